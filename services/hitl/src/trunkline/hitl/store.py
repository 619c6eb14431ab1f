"""Where tickets live: a JetStream key-value bucket (survives a hitl restart), behind an ABC.

Each ticket is one key, ``<tenant>.<ticket_id>``, holding the ``hitl.v1.Ticket`` protobuf. Every
write names the revision it read (compare-and-set): of two operators accepting the same ticket at
the same moment, one write lands and the other gets :class:`StaleRevision`, re-reads and finds
the ticket taken. A watcher keeps an in-process mirror of all tickets, from which the queue lists
tickets, finds deadlines and streams changes. After a NATS reconnect the watch is made again and
replays the current tickets: a follower sees every ticket's latest state, though a state that
was overwritten during the gap (e.g. TAKEN_OVER followed at once by ENDED) is folded into it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.js import api
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from trunkline.bus import Bus
from trunkline.bus.tasks import stop
from trunkline.hitl.convert import ticket_of, ticket_pb
from trunkline.hitl.core.tickets import Ticket
from trunkline.proto.hitl.v1 import hitl_pb2

log = logging.getLogger(__name__)

BUCKET = "HITL_TICKETS"


class StaleRevision(Exception):  # noqa: N818
    """Someone else wrote the ticket since it was read."""


@dataclass(frozen=True, slots=True)
class Stored:
    ticket: Ticket
    revision: int

    @property
    def key(self) -> str:
        return key_of(self.ticket.tenant_id, self.ticket.ticket_id)


def key_of(tenant_id: str, ticket_id: str) -> str:
    return f"{tenant_id}.{ticket_id}"


class TicketStore(abc.ABC):
    """Durable tickets with compare-and-set writes and a feed of every change."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[Stored]] = set()

    @property
    def is_connected(self) -> bool:
        """Writes can reach the store now."""
        return True

    @abc.abstractmethod
    async def open(self) -> None:
        """Create what is missing and load the mirror (all tickets) before returning."""

    @abc.abstractmethod
    async def create(self, ticket: Ticket) -> Stored:
        """Store a new ticket; StaleRevision if the key exists."""

    @abc.abstractmethod
    async def get(self, tenant_id: str, ticket_id: str) -> Stored | None:
        """The ticket as stored now (read from the store, not the mirror)."""

    @abc.abstractmethod
    async def update(self, ticket: Ticket, revision: int) -> Stored:
        """Write ``ticket`` if the stored revision is still ``revision``; else StaleRevision."""

    @abc.abstractmethod
    def snapshot(self) -> list[Stored]:
        """Every ticket in the mirror (may lag a write by milliseconds)."""

    def tenant_of(self, ticket_id: str) -> str | None:
        """Which tenant a ticket id belongs to (for a clear wrong-tenant error)."""
        for stored in self.snapshot():
            if stored.ticket.ticket_id == ticket_id:
                return stored.ticket.tenant_id
        return None

    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[asyncio.Queue[Stored]]:
        """A queue of every ticket write seen after entering (all tenants), in order."""
        queue: asyncio.Queue[Stored] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    def _notify(self, stored: Stored) -> None:
        for queue in list(self._listeners):
            queue.put_nowait(stored)

    @abc.abstractmethod
    async def close(self) -> None: ...


class JetStreamTicketStore(TicketStore):
    """Tickets in the JetStream KV bucket ``HITL_TICKETS`` (file storage, one replica here)."""

    def __init__(
        self, bus: Bus, *, bucket: str = BUCKET, keep: timedelta = timedelta(days=7)
    ) -> None:
        super().__init__()
        self._bus = bus
        self._bucket = bucket
        self._keep = keep
        self._kv: KeyValue | None = None
        self._mirror: dict[str, Stored] = {}
        self._watch: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self.resync_check_s = 0.5

    @property
    def is_connected(self) -> bool:
        return self._bus.is_connected

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the ticket store is not open")
        return self._kv

    async def open(self) -> None:
        js = self._bus.client.jetstream()
        try:
            self._kv = await js.key_value(self._bucket)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await js.create_key_value(
                api.KeyValueConfig(
                    bucket=self._bucket,
                    description="hitl: escalation and approval tickets (hitl.v1.Ticket)",
                    history=1,
                    ttl=self._keep.total_seconds(),
                    storage=api.StorageType.FILE,
                )
            )
        first = await self.kv.watchall()
        self._watch = asyncio.create_task(self._follow_forever(first), name="hitl-ticket-watch")
        waiter = asyncio.create_task(self._loaded.wait())
        done, _ = await asyncio.wait({waiter, self._watch}, return_when=asyncio.FIRST_COMPLETED)
        if self._watch in done:
            waiter.cancel()
            self._watch.result()  # raise what ended the watch
            raise RuntimeError("the ticket watch ended before the mirror loaded")

    def _reconnects(self) -> int:
        return int(self._bus.client.stats.get("reconnects", 0))

    async def _follow_forever(self, watcher: KeyValue.KeyWatcher) -> None:
        """Follow every write; after a NATS reconnect (the server may have lost the watch's
        consumer) watch again: the new watch replays the current tickets, and those newer than
        the mirror are announced as changes, so nothing written meanwhile is missed."""
        while True:
            reconnects = self._reconnects()
            following = asyncio.create_task(self._follow(watcher))
            try:
                while not following.done():
                    await asyncio.wait({following}, timeout=self.resync_check_s)
                    if self._reconnects() != reconnects and self._bus.is_connected:
                        log.info("ticket watch: NATS reconnected, watching again")
                        break
            finally:
                following.cancel()
                # the follower's own end (cancelled, or a dead watch) is a result here, while a
                # cancel of this task (close()) still propagates: suppressing CancelledError
                # around `await following` would swallow it and keep re-watching forever
                await asyncio.gather(following, return_exceptions=True)
            while True:
                try:
                    watcher = await self.kv.watchall()
                    break
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
                    log.info("ticket watch: cannot watch yet (%r); retrying", exc)
                    await asyncio.sleep(self.resync_check_s)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                if entry is None:  # end of the initial values
                    self._loaded.set()
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    self._mirror.pop(entry.key, None)
                    continue
                stored = _decode(entry.key, entry.value, entry.revision or 0)
                if stored is None:
                    continue
                current = self._mirror.get(entry.key)
                if current is None or current.revision < stored.revision:
                    self._mirror[entry.key] = stored
                    self._notify(stored)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def create(self, ticket: Ticket) -> Stored:
        key = key_of(ticket.tenant_id, ticket.ticket_id)
        try:
            revision = await self.kv.create(key, ticket_pb(ticket).SerializeToString())
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise StaleRevision(f"{key} exists") from exc
        return Stored(ticket, revision)

    async def get(self, tenant_id: str, ticket_id: str) -> Stored | None:
        key = key_of(tenant_id, ticket_id)
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return _decode(key, entry.value, entry.revision or 0)

    async def update(self, ticket: Ticket, revision: int) -> Stored:
        key = key_of(ticket.tenant_id, ticket.ticket_id)
        try:
            new = await self.kv.update(key, ticket_pb(ticket).SerializeToString(), last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise StaleRevision(f"{key} changed since revision {revision}") from exc
        return Stored(ticket, new)

    def snapshot(self) -> list[Stored]:
        return list(self._mirror.values())

    async def close(self) -> None:
        if self._watch is not None:
            # stop(): cancelled while it re-subscribes, the watch can swallow the cancel
            error = await stop(self._watch)
            if error is not None and not isinstance(error, nats.errors.Error):
                raise error


def _decode(key: str, value: bytes, revision: int) -> Stored | None:
    message = hitl_pb2.Ticket()
    try:
        message.ParseFromString(value)
        return Stored(ticket_of(message), revision)
    except (DecodeError, KeyError, ValueError) as exc:
        log.error("ticket %s (revision %d) is unreadable, skipped: %r", key, revision, exc)
        return None
