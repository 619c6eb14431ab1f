"""The ticket queue on the in-memory store with a fake clock: the sweeper requeues lapsed claims
and expires tickets as time is advanced; metrics and events follow every change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    EscalationInfo,
    InvalidRequest,
    Line,
    State,
    Ticket,
)
from trunkline.hitl.events import event_for
from trunkline.hitl.fakes import MemoryTicketStore
from trunkline.hitl.metrics import HitlMetrics
from trunkline.hitl.queue import QueuePolicy, TicketQueue
from trunkline.proto.common.v1 import handoff_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.telemetry.prometheus import PrometheusReader, registry_for
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

CALL = CallRef("acme", "call-1")


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    async def changed(self, before: Ticket | None, after: Ticket, change: str) -> None:
        self.changes.append((after.ticket_id, change))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
async def setup(clock: FakeClock) -> AsyncIterator[tuple[TicketQueue, Recorder, PrometheusReader]]:
    reader = PrometheusReader()
    metrics = HitlMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
    recorder = Recorder()
    queue = TicketQueue(
        MemoryTicketStore(),
        clock=clock,
        policy=QueuePolicy(claim_timeout=30, escalation_timeout=600, approval_timeout=60),
        listeners=[recorder, metrics],
        observers=[metrics.observe],
        new_id=iter(f"t{i}" for i in range(100)).__next__,
    )
    await queue.start()
    yield queue, recorder, reader
    await queue.close()


def samples(reader: PrometheusReader) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in registry_for(reader).collect():
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def settle(clock: FakeClock, seconds: float) -> None:
    await clock.advance_and_settle(seconds)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_sweeper_requeues_a_lapsed_claim_then_expires_the_ticket(
    setup: tuple[TicketQueue, Recorder, PrometheusReader], clock: FakeClock
) -> None:
    queue, recorder, reader = setup
    ticket = await queue.escalate(CALL, EscalationInfo("frustration"), [Line("caller", "Ugh.")])
    await queue.claim("acme", ticket.ticket_id, "op-1")
    await settle(clock, 29)
    assert (await queue.get("acme", ticket.ticket_id)).state is State.CLAIMED
    await settle(clock, 1)
    requeued = await queue.get("acme", ticket.ticket_id)
    assert (requeued.state, requeued.operator_id, requeued.requeues) == (State.QUEUED, "", 1)
    assert samples(reader)["hitl_queue_depth{kind=escalation}"] == 1
    await settle(clock, 570)
    assert (await queue.get("acme", ticket.ticket_id)).state is State.EXPIRED
    assert [c for _, c in recorder.changes] == ["requested", "claimed", "requeued", "expired"]
    exposed = samples(reader)
    assert exposed["hitl_queue_depth{kind=escalation}"] == 0
    assert exposed["hitl_escalations_total{outcome=requeued,reason=frustration}"] == 1
    assert exposed["hitl_escalations_total{outcome=expired,reason=frustration}"] == 1


async def test_accept_and_approval_waits_are_measured(
    setup: tuple[TicketQueue, Recorder, PrometheusReader], clock: FakeClock
) -> None:
    queue, _, reader = setup
    ticket = await queue.escalate(CALL, EscalationInfo("caller_request"))
    await settle(clock, 12)
    await queue.accept("acme", ticket.ticket_id, "op-1")
    approval = await queue.request_approval(CALL, ApprovalInfo("tc", "refund", "{}"))
    await settle(clock, 3)
    await queue.deny("acme", approval.ticket_id, "op-1", note="no")
    await settle(clock, 0)  # the depth follows the store's feed
    exposed = samples(reader)
    assert exposed["hitl_accept_duration_s_sum{}"] == 12
    assert exposed["hitl_approval_wait_duration_s_sum{}"] == 3
    assert exposed["hitl_approvals_total{outcome=denied,tool=refund}"] == 1
    assert exposed["hitl_queue_depth{kind=approval}"] == 0
    assert exposed["hitl_queue_depth{kind=escalation}"] == 0


async def test_a_listener_that_fails_never_breaks_the_queue(clock: FakeClock) -> None:
    class Broken:
        async def changed(self, before: Ticket | None, after: Ticket, change: str) -> None:
            raise RuntimeError("bus down")

    queue = TicketQueue(MemoryTicketStore(), clock=clock, listeners=[Broken()])
    await queue.start()
    try:
        ticket = await queue.escalate(CALL, EscalationInfo())
        taken = await queue.accept("acme", ticket.ticket_id, "op-1")
        assert taken.state is State.TAKEN_OVER
    finally:
        await queue.close()


async def test_events_carry_the_change(
    setup: tuple[TicketQueue, Recorder, PrometheusReader], clock: FakeClock
) -> None:
    queue, _, _ = setup
    ticket = await queue.escalate(CALL, EscalationInfo("caller_request", detail="asked"))
    requested = event_for(ticket, "requested", clock.now(), lambda: "e1")
    assert requested is not None
    kind, payload = requested
    assert kind == "escalation"
    assert isinstance(payload, events_pb2.EscalationRequested)
    assert payload.reason == handoff_pb2.ESCALATION_REASON_CALLER_REQUEST
    assert payload.ticket_id == ticket.ticket_id
    await settle(clock, 5)
    taken = await queue.accept("acme", ticket.ticket_id, "op-7")
    accepted = event_for(taken, "accepted", clock.now(), lambda: "e2")
    assert accepted is not None
    kind, update = accepted
    assert kind == "escalation_updated"
    assert isinstance(update, events_pb2.EscalationUpdated)
    assert (update.change, update.operator_id, update.wait_time.seconds) == ("accepted", "op-7", 5)
    approval = await queue.request_approval(CALL, ApprovalInfo("tc", "refund", "{}"))
    claimed = await queue.claim("acme", approval.ticket_id, "op-1")
    assert event_for(claimed, "claimed", clock.now()) is None  # approvals: requested/decided


async def test_a_repeated_request_id_returns_the_first_ticket(
    setup: tuple[TicketQueue, Recorder, PrometheusReader],
) -> None:
    queue, recorder, _ = setup
    first = await queue.escalate(CALL, EscalationInfo("caller_request"), request_id="call-1-t3")
    again = await queue.escalate(CALL, EscalationInfo("caller_request"), request_id="call-1-t3")
    assert again.ticket_id == first.ticket_id
    other = await queue.escalate(CALL, EscalationInfo("caller_request"), request_id="call-1-t4")
    assert other.ticket_id != first.ticket_id
    approval = await queue.request_approval(
        CALL, ApprovalInfo("tc", "refund", "{}"), request_id="call-1-t3"
    )
    assert approval.ticket_id != first.ticket_id  # kinds never share a key
    assert [c for _, c in recorder.changes].count("requested") == 3
    assert len(await queue.list("acme")) == 3
    with pytest.raises(InvalidRequest, match="request_id was already used"):
        await queue.escalate(CallRef("acme", "call-2"), EscalationInfo(), request_id="call-1-t3")


async def test_a_ticket_keeps_what_was_said_but_never_a_card_number(
    setup: tuple[TicketQueue, Recorder, PrometheusReader],
) -> None:
    queue, _, _ = setup
    said = "My card is 4111 1111 1111 1111, call me back on 415 555 0199."
    ticket = await queue.escalate(CALL, EscalationInfo("caller_request"), [Line("caller", said)])
    stored = (await queue.get("acme", ticket.ticket_id)).transcript[0].text
    assert stored == "My card is [CARD], call me back on 415 555 0199."
    assert "4111" not in ticket.summary
