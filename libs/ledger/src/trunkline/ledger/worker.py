"""The ledger worker: JetStream events in, ledger rows out, nothing lost.

It reads two durable consumers (``trunkline.bus.streams.COST_LEDGER`` over the ``EVENTS`` stream
and ``COST_LEDGER_SHADOW`` over the candidates' shadow results) into a bounded in-memory buffer;
a writer takes what is there in batches (one transaction each) and acks each message only once
its fact is written. When the database is down or locked, the writer holds its batch and
retries with backoff (``ledger_write_failures_total`` counts the failures), the buffer fills,
reading stops (back-pressure), and the rest wait, stored, in JetStream, which redelivers
anything held past ``ack_wait`` — redelivered events are skipped by their id, so every event
is applied exactly once. The calls themselves
never wait on the ledger: the gateway only publishes to JetStream, whatever state the database
is in. A message that is not a valid event is logged, counted and terminated (never retried).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from trunkline.bus import BadPayloadError, BusBase, ConsumerSpec, Delivery
from trunkline.bus.streams import COST_LEDGER, COST_LEDGER_SHADOW, EVENTS, SHADOW
from trunkline.bus.tasks import stop as stop_task
from trunkline.ledger.events import fact_from
from trunkline.ledger.facts import Fact
from trunkline.ledger.metrics import LedgerMetrics
from trunkline.ledger.store import Applied, LedgerStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between write attempts: ``first_s``, doubling, at most ``max_s``."""

    first_s: float = 0.2
    max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * 2 ** min(attempt, 20)))


DEFAULT_RETRY = RetryPolicy()


class LedgerWorker:
    def __init__(
        self,
        bus: BusBase,
        store: LedgerStore,
        *,
        metrics: LedgerMetrics | None = None,
        consumers: Sequence[ConsumerSpec] = (COST_LEDGER, COST_LEDGER_SHADOW),
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        buffer: int = 500,
        batch: int = 100,
    ) -> None:
        self.bus = bus
        self.store = store
        self.metrics = metrics
        self.consumers = tuple(consumers)
        self.retry = retry
        self.sleep = sleep
        self.applied = 0
        self.write_failures = 0
        self.bad_events = 0
        self.holding = 0  # facts in the writer's hand, waiting for the database
        self.batch = batch
        self._buffer: asyncio.Queue[tuple[Fact | None, Delivery]] = asyncio.Queue(maxsize=buffer)

    @property
    def pending(self) -> int:
        """Events read but not yet written and acked."""
        return self._buffer.qsize() + self.holding

    async def run(self) -> None:
        """Consume until cancelled."""
        await self.bus.ensure_stream(EVENTS)
        await self.bus.ensure_stream(SHADOW)
        writer = asyncio.create_task(self._write_loop(), name="ledger-writer")
        try:
            await asyncio.gather(*(self._consume(spec) for spec in self.consumers))
        finally:
            error = await stop_task(writer)  # again until done: nats-py can swallow a cancel
            if error is not None:
                raise error

    async def _consume(self, spec: ConsumerSpec) -> None:
        """Read ``spec`` until cancelled; a failure of the bus is logged and reading resumes
        (unacked messages come again), so the worker never stops silently."""
        while True:
            try:
                async with aclosing(self.bus.durable_messages(spec)) as deliveries:
                    async for delivery in deliveries:
                        await self.handle(delivery)
            except Exception:
                log.exception("ledger: reading %s failed; resuming in 1 s", spec.durable)
                await self.sleep(1.0)

    async def handle(self, delivery: Delivery) -> None:
        try:
            fact = fact_from(delivery.subject, delivery.data)
        except (BadPayloadError, ValueError) as exc:
            self.bad_events += 1
            if self.metrics is not None:
                self.metrics.bad_events.add(1)
            log.error("ledger: dropping an unreadable event on %s: %s", delivery.subject, exc)
            await delivery.term()
            return
        await self._buffer.put((fact, delivery))  # waits while the buffer is full

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._buffer.get()]
            while len(batch) < self.batch and not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
            await self._settle(batch)

    async def _settle(self, batch: list[tuple[Fact | None, Delivery]]) -> None:
        """Write the batch's facts, then ack its messages. A fact the store refuses for a
        reason other than the database being unavailable is found by writing one by one,
        logged with its event id and terminated; the others are written."""
        facts = [fact for fact, _ in batch if fact is not None]
        try:
            if facts:
                await self.write(facts)
        except Exception:
            log.exception(
                "ledger: a batch of %d events failed; writing them one by one", len(facts)
            )
            for fact, delivery in batch:
                if fact is not None:
                    try:
                        await self.write([fact])
                    except Exception:
                        self.bad_events += 1
                        log.exception("ledger: event %s cannot be written; dropped", fact.event_id)
                        await _settle_quietly(delivery.term)
                        continue
                await _settle_quietly(delivery.ack)
            return
        for _, delivery in batch:
            await _settle_quietly(delivery.ack)

    async def write(self, facts: Sequence[Fact]) -> list[Applied]:
        """Write ``facts``, retrying until the database takes them."""
        attempt = 0
        self.holding += len(facts)
        try:
            while True:
                try:
                    applied = await asyncio.to_thread(self.store.apply, facts)
                except (SQLAlchemyError, OSError) as exc:
                    self.write_failures += 1
                    if self.metrics is not None:
                        self.metrics.write_failures.add(1)
                    delay = self.retry.delay(attempt)
                    level = logging.WARNING if attempt == 0 else logging.DEBUG
                    log.log(
                        level, "ledger write failed (%s); retrying in %.1fs", _short(exc), delay
                    )
                    attempt += 1
                    await self.sleep(delay)
                    continue
                if attempt:
                    log.info("ledger write succeeded after %d failed attempts", attempt)
                break
        finally:
            self.holding -= len(facts)
        self.applied += len(applied)
        if self.metrics is not None:
            self.metrics.applied(applied)
        return applied


async def _settle_quietly(action: Callable[[], Awaitable[None]]) -> None:
    """Ack or term; a failure (NATS away) only means the message comes again, and is skipped."""
    try:
        await action()
    except Exception as exc:
        log.warning("ledger: settling a message failed (%s); it will come again", _short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
