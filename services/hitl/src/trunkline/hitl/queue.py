"""The hitl queue: the Python API of the escalation and approval queues.

This is the one object behind both faces of the service: the gRPC surface (``server.py``, used
by the gateway) and the operator console (``console/``, same process) call it. Its method names
and signatures are kept stable; the console depends on them.

    queue = TicketQueue(store, clock=WallClock(), events=..., metrics=...)
    await queue.start()                       # loads tickets, starts the timeout sweeper
    # operator side (console) - every call names the operator's tenant:
    tickets = await queue.list("acme")                      # open tickets, oldest first
    ticket = await queue.get("acme", ticket_id)
    ticket = await queue.claim("acme", ticket_id, "op-1")   # reserve for claim_timeout
    ticket = await queue.accept("acme", ticket_id, "op-1")  # take the call over
    ticket = await queue.hand_back("acme", ticket_id, "op-1", note="refund promised")
    ticket = await queue.end_call("acme", ticket_id, "op-1")   # = hand_back(..., end_call=True)
    ticket = await queue.approve("acme", ticket_id, "op-1", arguments_json='{"amount": 20}')
    ticket = await queue.deny("acme", ticket_id, "op-1", note="over the limit")
    ticket = await queue.decide("acme", ticket_id, "op-1", outcome="approved")  # or "denied"
    async with queue.watch("acme") as changes: ...          # every change of acme's tickets
    # agent side (gateway, through gRPC):
    ticket = await queue.escalate(call, info, transcript)
    ticket = await queue.request_approval(call, info, transcript)
    async for ticket in queue.follow("acme", ticket_id): ...  # until terminal
    await queue.cancel("acme", ticket_id, reason="call ended")
    await queue.offer_callback("acme", ticket_id, accepted=True, number="+14155550100")
    await queue.close()

Tickets are :class:`trunkline.hitl.core.tickets.Ticket` (frozen dataclasses). Errors are
:class:`~trunkline.hitl.core.tickets.TicketError` subclasses with a message fit for the
operator: ``NotFound`` (unknown id), ``WrongTenant`` (the ticket is another tenant's),
``Closed`` (already decided, expired, ...), ``Held`` (another operator has it: of two operators
accepting at once, exactly one wins and the other gets ``Held``), ``WrongState``,
``InvalidRequest`` (bad tenant token, edited arguments that are not a JSON object, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from trunkline.bus.tasks import stop
from trunkline.hitl.backends.summary import ExtractiveSummarizer, Summarizer
from trunkline.hitl.core import tickets as core
from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    EscalationInfo,
    Kind,
    Line,
    NotFound,
    Outcome,
    State,
    Ticket,
    WrongTenant,
    check_token,
)
from trunkline.hitl.store import StaleRevision, Stored, TicketStore
from trunkline.redaction import Entity, redact

log = logging.getLogger(__name__)

__all__ = ["Clock", "QueuePolicy", "TicketListener", "TicketQueue", "WallClock"]


class Clock(Protocol):
    """Wall-clock seconds and a sleep (``trunkline.testing.clock.FakeClock`` in tests)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class TicketListener(Protocol):
    """Told of every change this process made (events, metrics); never raises into the queue."""

    async def changed(self, before: Ticket | None, after: Ticket, change: str) -> None: ...


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    escalation_timeout: float = 600.0  # an escalation waits this long for an operator
    approval_timeout: float = 60.0  # an approval expires (= denied) after this
    claim_timeout: float = 30.0  # a claimed ticket goes back to the queue after this
    callback_keep: float = 86400.0  # a ticket with an accepted callback stays this long
    sweep_max_sleep: float = 0.5  # the sweeper looks at least this often


class TicketQueue:
    """Escalation and approval tickets over a :class:`TicketStore` (see module doc)."""

    def __init__(
        self,
        store: TicketStore,
        *,
        clock: Clock | None = None,
        policy: QueuePolicy | None = None,
        listeners: Sequence[TicketListener] = (),
        summarizer: Summarizer | None = None,
        observers: Sequence[Callable[[Stored], None]] = (),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or WallClock()
        self.policy = policy or QueuePolicy()
        self._listeners = list(listeners)
        self._summarizer = summarizer or ExtractiveSummarizer()
        self._observers = list(observers)
        self._observing: asyncio.Task[None] | None = None
        self._new_id = new_id
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (loads every ticket) and start the timeout sweeper."""
        await self.store.open()
        if self._observers:
            ready = asyncio.Event()
            self._observing = asyncio.create_task(self._observe(ready), name="hitl-observers")
            await ready.wait()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hitl-sweeper")

    async def close(self) -> None:
        for task in (self._sweeper, self._observing):
            if task is not None:
                error = await stop(task)  # a cancel in nats-py's publish path can be swallowed
                if error is not None:
                    raise error
        self._sweeper = self._observing = None
        await self.store.close()
        for hook in self._on_close:
            await hook()

    def on_close(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` at the end of :meth:`close` (e.g. close the bus the store uses)."""
        self._on_close.append(hook)

    @property
    def is_connected(self) -> bool:
        """The store can be written (NATS connected, for the JetStream store)."""
        return self.store.is_connected

    async def _observe(self, ready: asyncio.Event) -> None:
        """Feed every stored ticket, then every write (any replica's), to the observers."""
        async with self.store.changes() as changes:
            for stored in self.store.snapshot():
                self._observe_one(stored)
            ready.set()
            while True:
                self._observe_one(await changes.get())

    def _observe_one(self, stored: Stored) -> None:
        for observer in self._observers:
            try:
                observer(stored)
            except Exception:
                log.exception("ticket observer %r failed", observer)

    # -- agent side ----------------------------------------------------------------------------

    async def escalate(
        self,
        call: CallRef,
        info: EscalationInfo,
        transcript: Sequence[Line] = (),
        expires_in: float | None = None,
        request_id: str = "",
    ) -> Ticket:
        """Queue an escalation ticket for ``call`` (with its summary); returns it QUEUED.
        ``request_id``: idempotency key; a repeat returns the first request's ticket."""
        lines = without_cards(transcript)
        ticket = core.new_escalation(
            self._ticket_id(call.tenant_id, Kind.ESCALATION, request_id),
            call=call,
            info=info,
            transcript=lines,
            summary=await self._summarizer.summarize(lines, info.reason),
            now=self.clock.now(),
            timeout=expires_in or self.policy.escalation_timeout,
        )
        return await self._create(ticket)

    async def request_approval(
        self,
        call: CallRef,
        info: ApprovalInfo,
        transcript: Sequence[Line] = (),
        expires_in: float | None = None,
        request_id: str = "",
    ) -> Ticket:
        """Queue an approval ticket for a high-risk tool call; returns it QUEUED.
        ``request_id``: idempotency key; a repeat returns the first request's ticket."""
        lines = without_cards(transcript)
        summary = f"Approve {info.tool_name}: {info.justification}".strip().rstrip(":")
        ticket = core.new_approval(
            self._ticket_id(call.tenant_id, Kind.APPROVAL, request_id),
            call=call,
            info=info,
            transcript=lines,
            summary=summary,
            now=self.clock.now(),
            timeout=expires_in or self.policy.approval_timeout,
        )
        return await self._create(ticket)

    async def cancel(self, tenant_id: str, ticket_id: str, reason: str = "") -> Ticket:
        now = self.clock.now()
        return await self._apply(tenant_id, ticket_id, lambda t: core.cancel(t, now, reason))

    async def offer_callback(
        self, tenant_id: str, ticket_id: str, *, accepted: bool, number: str = ""
    ) -> Ticket:
        now = self.clock.now()
        keep = self.policy.callback_keep
        return await self._apply(
            tenant_id,
            ticket_id,
            lambda t: core.offer_callback(t, now, accepted=accepted, number=number, keep_for=keep),
        )

    async def follow(self, tenant_id: str, ticket_id: str) -> AsyncGenerator[Ticket, None]:
        """The ticket now, then each change, ending after a terminal state."""
        key_tenant = check_token(tenant_id, "tenant")
        async with self.store.changes() as changes:
            stored = await self._load(key_tenant, ticket_id)
            last = stored.revision
            yield stored.ticket
            if stored.ticket.is_terminal:
                return
            while True:
                change = await changes.get()
                if (
                    change.ticket.ticket_id != ticket_id
                    or change.ticket.tenant_id != tenant_id
                    or change.revision <= last
                ):
                    continue
                last = change.revision
                yield change.ticket
                if change.ticket.is_terminal:
                    return

    # -- operator side -------------------------------------------------------------------------

    async def list(
        self, tenant_id: str, kind: Kind | None = None, include_closed: bool = False
    ) -> list[Ticket]:
        """The tenant's open tickets oldest first; with ``include_closed`` the rest follow,
        most recent first. Listed tickets carry no operator token (``accept`` returns it)."""
        check_token(tenant_id, "tenant")
        now = self.clock.now()
        mine = [
            core.without_secrets(core.tick(s.ticket, now))
            for s in self.store.snapshot()
            if s.ticket.tenant_id == tenant_id and (kind is None or s.ticket.kind is kind)
        ]
        active = sorted((t for t in mine if not t.is_terminal), key=lambda t: t.created_at)
        if not include_closed:
            return active
        closed = sorted((t for t in mine if t.is_terminal), key=lambda t: -t.created_at)
        return active + closed

    def on_the_line(self, tenant_id: str, call_id: str, operator_id: str) -> Ticket | None:
        """The ticket ``operator_id`` holds on ``call_id`` (taken over, not handed back), if
        any: an unprompted TakeOver retried finds the first one instead of opening another."""
        for stored in self.store.snapshot():
            t = stored.ticket
            if (
                t.tenant_id == tenant_id
                and t.call.call_id == call_id
                and t.state is State.TAKEN_OVER
                and t.operator_id == operator_id
            ):
                return t
        return None

    async def get(self, tenant_id: str, ticket_id: str) -> Ticket:
        check_token(tenant_id, "tenant")
        stored = await self._load(tenant_id, ticket_id)
        return core.tick(stored.ticket, self.clock.now())

    async def claim(self, tenant_id: str, ticket_id: str, operator_id: str) -> Ticket:
        now = self.clock.now()
        timeout = self.policy.claim_timeout
        return await self._apply(
            tenant_id, ticket_id, lambda t: core.claim(t, operator_id, now, timeout)
        )

    async def accept(self, tenant_id: str, ticket_id: str, operator_id: str) -> Ticket:
        """Take the call over; the returned ticket carries the gateway's operator token
        (``ticket.escalation.operator_token``) for the operator's softphone leg."""
        now = self.clock.now()
        return await self._apply(tenant_id, ticket_id, lambda t: core.accept(t, operator_id, now))

    async def hand_back(
        self,
        tenant_id: str,
        ticket_id: str,
        operator_id: str,
        *,
        note: str = "",
        end_call: bool = False,
    ) -> Ticket:
        """The operator on the call hands it back to the agent (``note``: what the agent should
        know), or with ``end_call`` ends the call."""
        now = self.clock.now()
        return await self._apply(
            tenant_id,
            ticket_id,
            lambda t: core.hand_back(t, operator_id, now, note=note, end_call=end_call),
        )

    async def end_call(
        self, tenant_id: str, ticket_id: str, operator_id: str, *, note: str = ""
    ) -> Ticket:
        return await self.hand_back(tenant_id, ticket_id, operator_id, note=note, end_call=True)

    async def decide(
        self,
        tenant_id: str,
        ticket_id: str,
        operator_id: str,
        *,
        outcome: str,
        note: str = "",
        arguments_json: str = "",
    ) -> Ticket:
        """``outcome`` "approved" (``arguments_json``, a JSON object, edits the tool's
        arguments) or "denied" (for an escalation: dismissed, the agent keeps the call)."""
        try:
            chosen = Outcome(outcome)
        except ValueError:
            raise core.InvalidRequest(
                f"outcome {outcome!r} is not one of 'approved', 'denied'"
            ) from None
        now = self.clock.now()
        return await self._apply(
            tenant_id,
            ticket_id,
            lambda t: core.decide(
                t, operator_id, now, chosen, note=note, arguments_json=arguments_json
            ),
        )

    async def approve(
        self,
        tenant_id: str,
        ticket_id: str,
        operator_id: str,
        *,
        note: str = "",
        arguments_json: str = "",
    ) -> Ticket:
        """Approve an approval ticket; ``arguments_json`` (a JSON object) edits the arguments."""
        return await self.decide(
            tenant_id,
            ticket_id,
            operator_id,
            outcome="approved",
            note=note,
            arguments_json=arguments_json,
        )

    async def deny(
        self, tenant_id: str, ticket_id: str, operator_id: str, *, note: str = ""
    ) -> Ticket:
        """Deny an approval, or dismiss an escalation (the agent keeps the call)."""
        return await self.decide(tenant_id, ticket_id, operator_id, outcome="denied", note=note)

    @contextlib.asynccontextmanager
    async def watch(self, tenant_id: str) -> AsyncIterator[AsyncIterator[Ticket]]:
        """Every change of the tenant's tickets after entering, forever (break to stop), without
        operator tokens; subscribed on entering, so a reader can list the tickets inside the
        ``async with`` and miss nothing in between."""
        check_token(tenant_id, "tenant")
        async with self.store.changes() as changes:

            async def tickets() -> AsyncIterator[Ticket]:
                while True:
                    stored = await changes.get()
                    if stored.ticket.tenant_id == tenant_id:
                        yield core.without_secrets(stored.ticket)

            yield tickets()

    # -- internals -----------------------------------------------------------------------------

    async def _load(self, tenant_id: str, ticket_id: str) -> Stored:
        stored = await self.store.get(tenant_id, ticket_id)
        if stored is not None:
            return stored
        owner = self.store.tenant_of(ticket_id)
        if owner is not None and owner != tenant_id:
            raise WrongTenant(f"ticket {ticket_id} does not belong to tenant {tenant_id!r}")
        raise NotFound(f"no ticket {ticket_id!r} for tenant {tenant_id!r}")

    def _ticket_id(self, tenant_id: str, kind: Kind, request_id: str) -> str:
        if not request_id:
            return self._new_id()
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{kind.value}/{request_id}").hex

    async def _create(self, ticket: Ticket) -> Ticket:
        try:
            await self.store.create(ticket)
        except StaleRevision:  # the same request_id again: the first request's ticket
            first = await self._load(ticket.tenant_id, ticket.ticket_id)
            if (
                first.ticket.kind is not ticket.kind
                or first.ticket.call.call_id != ticket.call.call_id
            ):
                raise core.InvalidRequest(
                    "request_id was already used for another request (another call or kind)"
                ) from None
            return core.tick(first.ticket, self.clock.now())
        self._wake.set()
        await self._tell(None, ticket, "requested")
        return ticket

    async def _apply(
        self, tenant_id: str, ticket_id: str, action: Callable[[Ticket], Ticket]
    ) -> Ticket:
        """Read, let time pass (tick), act, compare-and-set; on a lost race read again."""
        check_token(tenant_id, "tenant")
        for _ in range(20):
            stored = await self._load(tenant_id, ticket_id)
            before = stored.ticket
            ticked = core.tick(before, self.clock.now())
            after = action(ticked)  # TicketError propagates (after persisting a tick below)
            if after is before:
                return before
            try:
                await self.store.update(after, stored.revision)
            except StaleRevision:
                continue
            self._wake.set()
            if ticked is not before and ticked is not after:
                await self._tell(before, ticked, core.change_of(before, ticked))
                before = ticked
            await self._tell(before, after, core.change_of(before, after))
            return after
        raise StaleRevision(f"ticket {ticket_id} kept changing under this update; try again")

    async def _tell(self, before: Ticket | None, after: Ticket, change: str | None) -> None:
        if change is None:
            return
        for listener in self._listeners:
            try:
                await listener.changed(before, after, change)
            except Exception:
                log.exception("ticket listener %r failed on %s", listener, change)

    async def _expire_due(self) -> float | None:
        """Apply every due timeout; the next deadline (None: nothing pending)."""
        now = self.clock.now()
        upcoming: list[float] = []
        for stored in self.store.snapshot():
            deadline = core.next_deadline(stored.ticket)
            if deadline is None:
                continue
            if deadline > now:
                upcoming.append(deadline)
                continue
            t = stored.ticket
            try:
                await self._apply(t.tenant_id, t.ticket_id, lambda ticket: ticket)
            except core.TicketError:
                continue
            except StaleRevision:
                upcoming.append(now)
        return min(upcoming) if upcoming else None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                deadline = await self._expire_due()
            except Exception:
                log.exception("ticket sweep failed; retrying")
                deadline = None
            now = self.clock.now()
            wait = self.policy.sweep_max_sleep
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - now))
            self._wake.clear()
            sleeper = asyncio.ensure_future(self.clock.sleep(wait))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()


_CARDS = frozenset({Entity.CARD})


def without_cards(transcript: Sequence[Line]) -> tuple[Line, ...]:
    """The lines a ticket keeps: what was said, for the operator, except payment card numbers
    (``[CARD]``), which no operator needs and no ticket store (JetStream KV) may hold."""
    return tuple(replace(line, text=redact(line.text, only=_CARDS)) for line in transcript)
