"""Which candidate agent versions are shadowed, shared over NATS (a JetStream key-value bucket).

The rollout operator writes a :class:`Candidate` when a rollout starts shadowing and removes it
when the shadow stops (failure, promotion, abort, the rollout deleted), together with the
candidate's durable consumer. Gateways watch the bucket and mirror sampled live turns of the
agent to every candidate listed (``trunkline.gateway.shadow``). One key per candidate version,
so two candidates of one agent are shadowed side by side, each through its own consumer.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig
from nats.js.kv import KeyValue

from trunkline.bus.nats_bus import Bus
from trunkline.bus.streams import SHADOW, SHADOW_PREFIX, candidate_token, shadow_turns

log = logging.getLogger(__name__)

BUCKET = "shadow-candidates"


@dataclass(frozen=True)
class Candidate:
    agent: str
    version: str
    sample_percent: float

    @property
    def key(self) -> str:
        return candidate_token(self.agent, self.version)

    def encode(self) -> bytes:
        data = {"agent": self.agent, "version": self.version, "samplePercent": self.sample_percent}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Candidate:
        data = json.loads(raw)
        percent = float(data["samplePercent"])
        if not 0.0 < percent <= 100.0:
            raise ValueError(f"samplePercent {percent} outside (0, 100]")
        return cls(str(data["agent"]), str(data["version"]), percent)


@dataclass(frozen=True)
class CandidateChange:
    """One change of the bucket: a candidate put, or the key removed (``candidate`` None)."""

    key: str
    candidate: Candidate | None


class ShadowCandidates:
    """The bucket of shadowed candidates, over a connected :class:`Bus`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js = self.bus.client.jetstream()
            try:
                self._kv = await js.key_value(BUCKET)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(bucket=BUCKET, description="shadowed candidate versions")
                )
        return self._kv

    async def put(self, candidate: Candidate) -> None:
        """Shadow ``candidate``: its consumer first (it keeps every turn mirrored from now on,
        before its runners start), then the entry the gateways watch."""
        await self.bus.ensure_stream(SHADOW)
        await self.bus.ensure_consumer(shadow_turns(candidate.agent, candidate.version))
        await (await self._bucket()).put(candidate.key, candidate.encode())

    async def remove(self, agent: str, version: str) -> bool:
        """Stop shadowing: the key and the candidate's durable consumer; False when neither
        existed."""
        kv = await self._bucket()
        key = candidate_token(agent, version)
        existed = True
        try:
            await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            existed = False
        if existed:
            await kv.delete(key)
        return await self.delete_consumer(agent, version) or existed

    async def delete_consumer(self, agent: str, version: str) -> bool:
        spec = shadow_turns(agent, version)
        js = self.bus.client.jetstream()
        try:
            await js.delete_consumer(SHADOW.name, spec.durable)
        except nats.js.errors.NotFoundError:
            return False
        log.info("deleted shadow consumer %s", spec.durable)
        return True

    async def consumer_exists(self, agent: str, version: str) -> bool:
        spec = shadow_turns(agent, version)
        try:
            await self.bus.client.jetstream().consumer_info(SHADOW.name, spec.durable)
        except nats.js.errors.NotFoundError:
            return False
        return True

    async def listed(self) -> list[Candidate]:
        kv = await self._bucket()
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        found = []
        for key in keys:
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                entry = await kv.get(key)
                if entry.value:
                    found.append(Candidate.decode(entry.value))
        return found

    async def watch(self) -> AsyncGenerator[CandidateChange, None]:
        """Every key now, then each change, forever. A value that does not decode is logged
        and reported as a removal (it is no usable candidate)."""
        kv = await self._bucket()
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the initial values are all delivered
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    yield CandidateChange(entry.key, None)
                    continue
                try:
                    yield CandidateChange(entry.key, Candidate.decode(entry.value))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("shadow candidate %s unreadable: %r", entry.key, exc)
                    yield CandidateChange(entry.key, None)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]


async def read_results(
    bus: Bus, agent: str, version: str, since: datetime, *, batch: int = 256
) -> list[bytes]:
    """The candidate's shadow results (``ShadowTurnResult`` payloads) stored since ``since``
    (an ephemeral consumer from that time, read to the end of the stream and removed)."""
    subject = f"{SHADOW_PREFIX}.result.{candidate_token(agent, version)}.>"
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
    )
    js = bus.client.jetstream()
    sub = await js.pull_subscribe(subject, stream=SHADOW.name, config=config)
    found: list[bytes] = []
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return found  # none stored: no fetch waiting out its timeout for nothing
        while True:
            try:
                messages = await sub.fetch(batch, timeout=0.5)
            except nats.errors.TimeoutError:
                break
            pending = 0
            for msg in messages:
                found.append(msg.data)
                pending = msg.metadata.num_pending
            if pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found
