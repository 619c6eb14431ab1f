"""The ticket queue over the real JetStream store: exactly one of two operators wins a ticket,
lapsed claims go back to the queue, approvals round-trip, events land on the EVENTS stream,
tenants never see each other's tickets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS
from trunkline.devservers import NatsServer
from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    Closed,
    EscalationInfo,
    Held,
    InvalidRequest,
    Line,
    NotFound,
    State,
    Ticket,
    WrongTenant,
)
from trunkline.hitl.events import TicketEvents
from trunkline.hitl.queue import QueuePolicy, TicketQueue, WallClock
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.proto.events.v1 import events_pb2

pytestmark = pytest.mark.integration

MakeQueue = Callable[..., Awaitable[TicketQueue]]


@pytest.fixture
async def make_queue(nats_server: NatsServer) -> AsyncIterator[MakeQueue]:
    """Queues (each its own NATS connection, like separate hitl replicas) on one fresh bucket."""
    bucket = f"T_{uuid.uuid4().hex[:10]}"
    made: list[TicketQueue] = []

    async def make(policy: QueuePolicy | None = None, events: bool = False) -> TicketQueue:
        bus = await Bus.connect(nats_server.url, name="hitl-test")
        await bus.ensure_stream(EVENTS)
        clock = WallClock()
        queue = TicketQueue(
            JetStreamTicketStore(bus, bucket=bucket),
            clock=clock,
            policy=policy,
            listeners=[TicketEvents(bus, clock.now)] if events else [],
        )
        await queue.start()
        queue.on_close(bus.close)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.close()


def call(tenant: str = "acme", call_id: str | None = None) -> CallRef:
    return CallRef(tenant, call_id or f"call-{uuid.uuid4().hex[:8]}", caller_address="+15550100")


async def escalate(queue: TicketQueue, tenant: str = "acme", **kw: float) -> Ticket:
    return await queue.escalate(
        call(tenant),
        EscalationInfo("caller_request", detail="asked for a person"),
        [Line("caller", "I want to talk to a real person about my refund.")],
        **kw,
    )


async def test_two_operators_accepting_at_once_exactly_one_wins(make_queue: MakeQueue) -> None:
    first, second = await make_queue(), await make_queue()
    for round_ in range(15):
        ticket = await escalate(first)
        results = await asyncio.gather(
            first.accept("acme", ticket.ticket_id, "op-a"),
            second.accept("acme", ticket.ticket_id, "op-b"),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, Ticket)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1, (round_, results)
        assert len(lost) == 1, (round_, results)
        assert isinstance(lost[0], Held)
        assert f"already accepted by operator {won[0].operator_id}" in str(lost[0])
        stored = await second.get("acme", ticket.ticket_id)
        assert stored.state is State.TAKEN_OVER
        assert stored.operator_id == won[0].operator_id


async def test_a_lapsed_claim_goes_back_to_the_queue_for_another_operator(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue(QueuePolicy(claim_timeout=0.3, sweep_max_sleep=0.05))
    ticket = await escalate(queue)
    claimed = await queue.claim("acme", ticket.ticket_id, "op-a")
    assert claimed.state is State.CLAIMED
    with pytest.raises(Held, match="claimed by operator op-a"):
        await queue.accept("acme", ticket.ticket_id, "op-b")
    states = []
    async with asyncio.timeout(5):
        async for seen in queue.follow("acme", ticket.ticket_id):
            states.append(seen.state)
            if seen.state is State.QUEUED and seen.requeues == 1:
                break
    assert states == [State.CLAIMED, State.QUEUED]
    taken = await queue.accept("acme", ticket.ticket_id, "op-b")
    assert (taken.state, taken.operator_id, taken.requeues) == (State.TAKEN_OVER, "op-b", 1)


async def test_an_escalation_nobody_takes_expires(make_queue: MakeQueue) -> None:
    queue = await make_queue(QueuePolicy(sweep_max_sleep=0.05))
    ticket = await escalate(queue, expires_in=0.3)
    async with asyncio.timeout(5):
        last = [t async for t in queue.follow("acme", ticket.ticket_id)][-1]
    assert last.state is State.EXPIRED
    with pytest.raises(Closed, match="expired: cannot accept"):
        await queue.accept("acme", ticket.ticket_id, "op-a")


async def test_approval_round_trip_with_edited_arguments_and_events(
    make_queue: MakeQueue, nats_server: NatsServer
) -> None:
    agent, console = await make_queue(events=True), await make_queue(events=True)
    the_call = call()
    ticket = await agent.request_approval(
        the_call,
        ApprovalInfo("tc-9", "issue_refund", '{"amount": 120}', "high", "caller was overcharged"),
    )
    seen: list[Ticket] = []

    async def wait() -> None:
        async for update in agent.follow("acme", ticket.ticket_id):
            seen.append(update)

    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0.05)
    listed = await console.list("acme")
    assert [t.ticket_id for t in listed] == [ticket.ticket_id]
    with pytest.raises(InvalidRequest, match="JSON object"):
        await console.approve("acme", ticket.ticket_id, "op-a", arguments_json='"120"')
    await console.approve("acme", ticket.ticket_id, "op-a", arguments_json='{"amount": 100}')
    async with asyncio.timeout(5):
        await waiter
    assert [t.state for t in seen] == [State.QUEUED, State.DECIDED]
    decision = seen[-1].decision
    assert decision is not None
    assert decision.arguments_json == '{"amount": 100}'
    assert await console.list("acme") == []

    bus = await Bus.connect(nats_server.url, name="events-reader")
    try:
        js = bus.client.jetstream()
        subject = f"trunkline.events.*.acme.{the_call.call_id}"
        sub = await js.pull_subscribe(
            subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL), stream="EVENTS"
        )
        messages = await sub.fetch(10, timeout=2)
        kinds = [m.subject.split(".")[2] for m in messages]
        assert kinds == ["approval", "approval_decided"]
        decided = events_pb2.ApprovalDecided.FromString(messages[1].data)
        assert decided.ticket_id == ticket.ticket_id
        assert decided.operator_id == "op-a"
        assert decided.arguments_json == '{"amount": 100}'
        assert decided.tool_call_id == "tc-9"
    finally:
        await bus.close()


async def test_tenants_are_kept_apart_and_unknown_tickets_are_named(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    ticket = await escalate(queue, tenant="acme")
    await asyncio.sleep(0.05)  # the mirror follows the write
    assert await queue.list("globex") == []
    assert [t.ticket_id for t in await queue.list("acme")] == [ticket.ticket_id]
    with pytest.raises(WrongTenant, match=f"{ticket.ticket_id} does not belong to tenant 'globex'"):
        await queue.accept("globex", ticket.ticket_id, "op-g")
    with pytest.raises(NotFound, match="no ticket 'nope' for tenant 'acme'"):
        await queue.deny("acme", "nope", "op-a")
    with pytest.raises(InvalidRequest, match="tenant 'ac me'"):
        await queue.list("ac me")
    assert (await queue.get("acme", ticket.ticket_id)).state is State.QUEUED  # nothing lost


async def test_hand_back_reaches_the_follower_and_a_new_queue_sees_it_all(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue()
    ticket = await escalate(queue)
    await queue.accept("acme", ticket.ticket_id, "op-a")
    follower = asyncio.create_task(_states(queue, ticket.ticket_id))
    await asyncio.sleep(0.05)
    await queue.hand_back("acme", ticket.ticket_id, "op-a", note="refund of 40 promised")
    async with asyncio.timeout(5):
        states = await follower
    assert states[-2:] == [State.TAKEN_OVER, State.HANDED_BACK]
    fresh = await make_queue()
    closed = await fresh.list("acme", include_closed=True)
    assert [(t.ticket_id, t.state) for t in closed] == [(ticket.ticket_id, State.HANDED_BACK)]
    assert closed[0].decision is not None
    assert closed[0].decision.note == "refund of 40 promised"
    assert "real person" in closed[0].summary


async def _states(queue: TicketQueue, ticket_id: str) -> list[State]:
    return [t.state async for t in queue.follow("acme", ticket_id)]


async def test_a_nats_restart_loses_no_ticket_and_no_update(
    make_queue: MakeQueue, nats_server: NatsServer
) -> None:
    watching, acting = await make_queue(), await make_queue()
    ticket = await escalate(watching)
    follower = asyncio.create_task(_states(watching, ticket.ticket_id))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(nats_server.restart)
    async with asyncio.timeout(20):
        while True:  # the acting replica's connection comes back
            try:
                await acting.accept("acme", ticket.ticket_id, "op-a")
                break
            except Exception:  # reconnecting
                await asyncio.sleep(0.1)
        await acting.end_call("acme", ticket.ticket_id, "op-a")
        states = await follower
    # a state written while the watch was re-established may be folded into the next one
    assert states[0] is State.QUEUED
    assert states[-1] is State.ENDED
    assert [t.state for t in await watching.list("acme", include_closed=True)] == [State.ENDED]
