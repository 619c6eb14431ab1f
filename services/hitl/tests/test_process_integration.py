"""``python -m trunkline.hitl`` as a real process on real NATS, driven over gRPC as the gateway
does: a pending escalation survives the process being killed, an operator still gets it after
the restart; WaitDecision reports accept and hand back; bad requests get clear statuses."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from trunkline.devservers import NatsServer, free_port
from trunkline.proto.common.v1 import (
    call_pb2,
    handoff_pb2,
    knowledge_pb2,
    tool_pb2,
    transcript_pb2,
)
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.runtime import wait_healthy
from trunkline.telephony.join import verify_join

pytestmark = pytest.mark.integration

HUMAN_LOOP = "trunkline.hitl.v1.HumanLoop"
SECRET = "test-join-secret"
ACME = call_pb2.CallContext(tenant_id="acme")
GLOBEX = call_pb2.CallContext(tenant_id="globex")
Code = grpc.StatusCode


@dataclass
class Hitl:
    port: int
    bucket: str
    nats_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "HITL_GRPC_PORT": str(self.port),
            "HITL_NATS_URL": self.nats_url,
            "HITL_TICKETS_BUCKET": self.bucket,
            "HITL_LOG_JSON": "false",
            "HITL_DRAIN_SECONDS": "2",
            "HITL_JOIN_URL": "http://127.0.0.1:8080/webrtc/offer",
            "HITL_JOIN_SECRET": SECRET,
            "HITL_CONSOLE_ENABLED": "false",  # the console has its own tests
            **self.extra,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trunkline.hitl"], env=env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def hitl(nats_server: NatsServer, tmp_path: Path) -> Iterator[Hitl]:
    process = Hitl(free_port(), f"T_{uuid.uuid4().hex[:10]}", nats_server.url, tmp_path / "h.log")
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
async def stub(hitl: Hitl) -> AsyncIterator[hitl_pb2_grpc.HumanLoopStub]:
    await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
    async with grpc.aio.insecure_channel(hitl.addr) as channel:
        yield hitl_pb2_grpc.HumanLoopStub(channel)


def escalation_request(call_id: str) -> hitl_pb2.EscalateRequest:
    said = [
        (transcript_pb2.SPEAKER_AGENT, "Bright Dental, how can I help?"),
        (transcript_pb2.SPEAKER_CALLER, "My crown came loose and the crown hurts."),
        (transcript_pb2.SPEAKER_AGENT, "Dental emergencies can be handled on Tuesday."),
        (
            transcript_pb2.SPEAKER_CALLER,
            "This is the third time I am calling. I want to talk to a real person.",
        ),
    ]
    return hitl_pb2.EscalateRequest(
        context=call_pb2.CallContext(
            tenant_id="acme",
            call_id=call_id,
            caller=call_pb2.Caller(address="+14155550100", display_name="Ann"),
        ),
        escalation=hitl_pb2.Escalation(
            reason=handoff_pb2.ESCALATION_REASON_CALLER_REQUEST,
            detail="explicit request for a person",
            transcript=[
                transcript_pb2.TranscriptEntry(speaker=s, text=t, turn_index=i)
                for i, (s, t) in enumerate(said)
            ],
            turns=[
                hitl_pb2.TurnContext(
                    turn_index=2,
                    query="my crown came loose",
                    context_text="[1] Loose crowns are seen the same day.",
                    citations=[knowledge_pb2.Citation(id="faq#3", title="Emergencies")],
                )
            ],
            customer=hitl_pb2.CustomerRecord(
                id="crm-42", source="crm", fields={"plan": "gold", "name": "Ann"}
            ),
            operator_token=f"gateway-minted-{call_id}",
        ),
    )


async def read_until(stream: object, state: int) -> list[int]:
    states: list[int] = []
    while True:
        message = await stream.read()  # type: ignore[attr-defined]
        assert message is not grpc.aio.EOF, states
        states.append(message.ticket.state)
        if message.ticket.state == state:
            return states


async def test_a_pending_escalation_survives_a_kill_and_an_operator_gets_it_after(
    hitl: Hitl,
) -> None:
    await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
    async with grpc.aio.insecure_channel(hitl.addr) as channel:
        stub = hitl_pb2_grpc.HumanLoopStub(channel)
        ticket = (await stub.Escalate(escalation_request("call-kill"))).ticket
        assert ticket.state == hitl_pb2.TICKET_STATE_QUEUED
        assert "real person" in ticket.summary
        follow = stub.WaitDecision(
            hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket.ticket_id)
        )
        assert (await follow.read()).ticket.state == hitl_pb2.TICKET_STATE_QUEUED
        hitl.kill()  # SIGKILL: no drain, nothing flushed by the process
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await follow.read()
        assert lost.value.code() == Code.UNAVAILABLE

    hitl.start()
    await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
    async with grpc.aio.insecure_channel(hitl.addr) as channel:
        stub = hitl_pb2_grpc.HumanLoopStub(channel)
        listed = (await stub.ListQueue(hitl_pb2.ListQueueRequest(context=ACME))).tickets
        assert [t.ticket_id for t in listed] == [ticket.ticket_id]
        survived = listed[0]
        assert survived.summary == ticket.summary
        assert len(survived.escalation.transcript) == 4
        assert survived.escalation.turns[0].citations[0].id == "faq#3"
        assert dict(survived.escalation.customer.fields) == {"plan": "gold", "name": "Ann"}
        assert survived.context.caller.address == "+14155550100"
        assert survived.escalation.operator_token == ""  # listed to every operator: no secret

        follow = stub.WaitDecision(
            hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket.ticket_id)
        )
        assert (await follow.read()).ticket.state == hitl_pb2.TICKET_STATE_QUEUED
        taken = await stub.TakeOver(
            hitl_pb2.TakeOverRequest(context=ACME, ticket_id=ticket.ticket_id, operator_id="op-1")
        )
        assert taken.ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
        assert [e.text for e in taken.transcript][-1].endswith("real person.")
        assert taken.join_url == "http://127.0.0.1:8080/webrtc/offer"
        assert taken.join_token == "gateway-minted-call-kill"  # the gateway's, for its endpoint
        assert await read_until(follow, hitl_pb2.TICKET_STATE_TAKEN_OVER) == [
            hitl_pb2.TICKET_STATE_TAKEN_OVER
        ]
        back = await stub.HandBack(
            hitl_pb2.HandBackRequest(
                context=ACME, ticket_id=ticket.ticket_id, operator_id="op-1", note="seen today 4pm"
            )
        )
        assert back.ticket.state == hitl_pb2.TICKET_STATE_HANDED_BACK
        last = await follow.read()
        assert last.ticket.state == hitl_pb2.TICKET_STATE_HANDED_BACK
        assert last.ticket.decision.note == "seen today 4pm"
        assert await follow.read() is grpc.aio.EOF


async def test_two_takeovers_at_once_exactly_one_wins(stub: hitl_pb2_grpc.HumanLoopStub) -> None:
    for index in range(5):
        ticket = (await stub.Escalate(escalation_request(f"call-race-{index}"))).ticket
        results = await asyncio.gather(
            *(
                stub.TakeOver(
                    hitl_pb2.TakeOverRequest(
                        context=ACME, ticket_id=ticket.ticket_id, operator_id=op
                    )
                )
                for op in ("op-a", "op-b")
            ),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, hitl_pb2.TakeOverResponse)]
        lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(won) == 1, results
        assert len(lost) == 1, results
        assert lost[0].code() == Code.FAILED_PRECONDITION
        assert f"already accepted by operator {won[0].ticket.operator_id}" in (
            lost[0].details() or ""
        )


async def test_approval_decided_over_grpc_reaches_wait_decision(
    stub: hitl_pb2_grpc.HumanLoopStub,
) -> None:
    context = call_pb2.CallContext(tenant_id="acme", call_id="call-approve")
    ticket = (
        await stub.RequestApproval(
            hitl_pb2.RequestApprovalRequest(
                context=context,
                approval=hitl_pb2.Approval(
                    tool_call=tool_pb2.ToolCall(
                        id="tc-1", name="issue_refund", arguments_json='{"amount": 80}'
                    ),
                    risk_level=tool_pb2.RISK_LEVEL_HIGH,
                    justification="double charge",
                ),
                timeout=Duration(seconds=30),
            )
        )
    ).ticket
    follow = stub.WaitDecision(
        hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket.ticket_id)
    )
    assert (await follow.read()).ticket.state == hitl_pb2.TICKET_STATE_QUEUED
    await stub.Decide(
        hitl_pb2.DecideRequest(
            context=ACME,
            ticket_id=ticket.ticket_id,
            outcome=handoff_pb2.DECISION_OUTCOME_APPROVED,
            operator_id="op-1",
            arguments_json='{"amount": 40}',
        )
    )
    decided = (await follow.read()).ticket
    assert decided.state == hitl_pb2.TICKET_STATE_DECIDED
    assert decided.decision.outcome == handoff_pb2.DECISION_OUTCOME_APPROVED
    assert decided.decision.arguments_json == '{"amount": 40}'
    assert await follow.read() is grpc.aio.EOF


async def expect(call: object, code: grpc.StatusCode, *words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    assert refused.value.code() == code, refused.value.details()
    for word in words:
        assert word in (refused.value.details() or ""), refused.value.details()


async def test_bad_requests_get_clear_statuses_and_lose_nothing(
    stub: hitl_pb2_grpc.HumanLoopStub,
) -> None:
    ticket = (await stub.Escalate(escalation_request("call-bad"))).ticket
    tid = ticket.ticket_id
    # another tenant's operator
    await expect(
        stub.TakeOver(hitl_pb2.TakeOverRequest(context=GLOBEX, ticket_id=tid, operator_id="g")),
        Code.PERMISSION_DENIED,
        "does not belong to tenant 'globex'",
    )
    await expect(
        stub.Decide(
            hitl_pb2.DecideRequest(
                context=GLOBEX,
                ticket_id=tid,
                outcome=handoff_pb2.DECISION_OUTCOME_DENIED,
                operator_id="g",
            )
        ),
        Code.PERMISSION_DENIED,
        "globex",
    )
    listed = await stub.ListQueue(hitl_pb2.ListQueueRequest(context=GLOBEX))
    assert list(listed.tickets) == []
    # unknown tickets
    await expect(
        stub.WaitDecision(hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id="nope")).read(),
        Code.NOT_FOUND,
        "no ticket 'nope'",
    )
    await expect(
        stub.Claim(hitl_pb2.ClaimRequest(context=ACME, ticket_id="nope", operator_id="op-1")),
        Code.NOT_FOUND,
        "nope",
    )
    # malformed
    await expect(
        stub.Decide(
            hitl_pb2.DecideRequest(
                context=ACME,
                ticket_id=tid,
                outcome=handoff_pb2.DECISION_OUTCOME_EXPIRED,
                operator_id="op-1",
            )
        ),
        Code.INVALID_ARGUMENT,
        "DECISION_OUTCOME_EXPIRED",
    )
    await expect(
        stub.Decide(
            hitl_pb2.DecideRequest(
                context=ACME,
                ticket_id=tid,
                outcome=handoff_pb2.DECISION_OUTCOME_APPROVED,
                operator_id="op-1",
            )
        ),
        Code.FAILED_PRECONDITION,
        "is an escalation",
    )
    await expect(
        stub.ListQueue(hitl_pb2.ListQueueRequest(context=ACME, page_token="zz")),
        Code.INVALID_ARGUMENT,
        "page_token",
    )
    await expect(
        stub.Claim(hitl_pb2.ClaimRequest(context=ACME, ticket_id=tid, operator_id="")),
        Code.INVALID_ARGUMENT,
        "operator id",
    )
    await expect(
        stub.Escalate(
            hitl_pb2.EscalateRequest(
                context=call_pb2.CallContext(tenant_id="acme", call_id="c"),
                timeout=Duration(seconds=-1),
            )
        ),
        Code.INVALID_ARGUMENT,
        "timeout must not be negative",
    )
    # an approval that expired
    approval = (
        await stub.RequestApproval(
            hitl_pb2.RequestApprovalRequest(
                context=call_pb2.CallContext(tenant_id="acme", call_id="call-bad"),
                approval=hitl_pb2.Approval(
                    tool_call=tool_pb2.ToolCall(id="t", name="refund", arguments_json="{}")
                ),
                timeout=Duration(nanos=200_000_000),
            )
        )
    ).ticket
    follow = stub.WaitDecision(
        hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=approval.ticket_id)
    )
    assert await read_until(follow, hitl_pb2.TICKET_STATE_EXPIRED) == [
        hitl_pb2.TICKET_STATE_QUEUED,
        hitl_pb2.TICKET_STATE_EXPIRED,
    ]
    await expect(
        stub.Decide(
            hitl_pb2.DecideRequest(
                context=ACME,
                ticket_id=approval.ticket_id,
                outcome=handoff_pb2.DECISION_OUTCOME_APPROVED,
                operator_id="op-1",
            )
        ),
        Code.FAILED_PRECONDITION,
        "is expired: cannot decide it",
    )
    # nothing lost: the escalation is still queued, untouched
    open_ = (await stub.ListQueue(hitl_pb2.ListQueueRequest(context=ACME))).tickets
    assert [(t.ticket_id, t.state) for t in open_] == [(tid, hitl_pb2.TICKET_STATE_QUEUED)]


async def gateway_side(addr: str, index: int) -> list[int]:
    """What the gateway does for one escalated call: Escalate (retried with the same request_id
    while hitl is down), then follow the ticket, calling WaitDecision again whenever the stream
    breaks, until a terminal state. Returns the states seen."""
    request = escalation_request(f"call-chaos-{index}")
    request.request_id = f"call-chaos-{index}-turn-3"
    states: list[int] = []
    ticket_id = ""
    while True:
        try:
            async with grpc.aio.insecure_channel(addr) as channel:
                stub = hitl_pb2_grpc.HumanLoopStub(channel)
                if not ticket_id:
                    ticket_id = (await stub.Escalate(request, timeout=2)).ticket.ticket_id
                follow = stub.WaitDecision(
                    hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket_id)
                )
                async for message in follow:
                    if not states or states[-1] != message.ticket.state:
                        states.append(message.ticket.state)
                if states and states[-1] in TERMINAL:
                    return states
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED}:
                raise  # only "hitl is down" may interrupt the gateway
        await asyncio.sleep(0.1)


TERMINAL = {hitl_pb2.TICKET_STATE_HANDED_BACK, hitl_pb2.TICKET_STATE_ENDED}


async def operator_side(
    addr: str, name: str, rng: random.Random, done: asyncio.Event
) -> dict[str, int]:
    """One operator working the queue: claims, sometimes walks away (the claim lapses), else
    takes the call and hands it back or ends it. Refusals (another state won) are fine."""
    counts = {"abandoned": 0, "handed_back": 0, "ended": 0, "refused": 0, "down": 0}
    while not done.is_set():
        try:
            async with grpc.aio.insecure_channel(addr) as channel:
                stub = hitl_pb2_grpc.HumanLoopStub(channel)
                listed = await stub.ListQueue(hitl_pb2.ListQueueRequest(context=ACME), timeout=2)
                for ticket in listed.tickets:
                    mine = ticket.operator_id.startswith(f"{name}-")
                    taken = ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
                    if not (ticket.state == hitl_pb2.TICKET_STATE_QUEUED or (taken and mine)):
                        continue
                    op = ticket.operator_id if taken else f"{name}-{rng.randrange(3)}"
                    tid = ticket.ticket_id
                    try:
                        if not taken:  # else: on the call already (the reply was lost in a kill)
                            await stub.Claim(
                                hitl_pb2.ClaimRequest(context=ACME, ticket_id=tid, operator_id=op)
                            )
                            if rng.random() < 0.3:
                                counts["abandoned"] += 1  # the claim lapses, it is requeued
                                continue
                            await stub.TakeOver(
                                hitl_pb2.TakeOverRequest(
                                    context=ACME, ticket_id=tid, operator_id=op
                                )
                            )
                        end = rng.random() < 0.5
                        await stub.HandBack(
                            hitl_pb2.HandBackRequest(
                                context=ACME, ticket_id=tid, operator_id=op, end_call=end
                            )
                        )
                        counts["ended" if end else "handed_back"] += 1
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != Code.FAILED_PRECONDITION:
                            raise
                        counts["refused"] += 1
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in {Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED}:
                raise
            counts["down"] += 1
        await asyncio.sleep(rng.uniform(0.05, 0.3))
    return counts


async def test_20_escalations_with_lapsed_claims_and_hitl_kills_lose_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    rng = random.Random(10)
    hitl = Hitl(
        free_port(),
        f"T_{uuid.uuid4().hex[:10]}",
        nats_server.url,
        tmp_path / "h.log",
        extra={"HITL_CLAIM_TIMEOUT_S": "0.5", "HITL_ESCALATION_TIMEOUT_S": "300"},
    )
    hitl.start()
    try:
        await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
        done = asyncio.Event()
        calls = [asyncio.create_task(gateway_side(hitl.addr, i)) for i in range(20)]
        operators = [
            asyncio.create_task(operator_side(hitl.addr, f"op{seed}", random.Random(seed), done))
            for seed in (1, 2)
        ]
        async with asyncio.timeout(120):
            for _ in range(3):  # kill -9 and restart while the calls are being worked
                await asyncio.sleep(rng.uniform(0.8, 1.6))
                hitl.kill()
                await asyncio.sleep(0.3)
                hitl.start()
            followed = await asyncio.gather(*calls)
            done.set()
            counts = await asyncio.gather(*operators)
        opened = {
            hitl_pb2.TICKET_STATE_QUEUED,
            # an operator may claim (or take) it between Escalate and the gateway's first
            # WaitDecision read, the more so on a busy machine or across a kill
            hitl_pb2.TICKET_STATE_CLAIMED,
            hitl_pb2.TICKET_STATE_TAKEN_OVER,
        }
        for states in followed:
            assert states[0] in opened, states
            assert states[-1] in TERMINAL, states
        assert all(c["down"] > 0 for c in counts), counts  # the kills hit work in progress
        assert sum(c["abandoned"] for c in counts) > 0, counts  # some claims lapsed
        # the calls may all have ended before the last restart: wait for it to serve
        await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
        async with grpc.aio.insecure_channel(hitl.addr) as channel:
            stub = hitl_pb2_grpc.HumanLoopStub(channel)
            everything = await stub.ListQueue(
                hitl_pb2.ListQueueRequest(context=ACME, include_closed=True)
            )
        # exactly one ticket per call (the retried Escalate calls made no duplicates)
        assert sorted(t.context.call_id for t in everything.tickets) == sorted(
            f"call-chaos-{i}" for i in range(20)
        )
        assert all(t.state in TERMINAL for t in everything.tickets)
        assert any(t.requeues > 0 for t in everything.tickets)
        assert hitl.log.read_text().count("Traceback") == 0, hitl.log.read_text()[-3000:]
    finally:
        hitl.kill()


async def test_an_operator_takes_a_call_over_unprompted_and_ends_it(
    stub: hitl_pb2_grpc.HumanLoopStub,
) -> None:
    context = call_pb2.CallContext(tenant_id="acme", call_id="call-unprompted")
    taken = await stub.TakeOver(hitl_pb2.TakeOverRequest(context=context, operator_id="op-9"))
    ticket = taken.ticket
    retried = await stub.TakeOver(hitl_pb2.TakeOverRequest(context=context, operator_id="op-9"))
    assert retried.ticket == ticket  # the same take-over, no second ticket
    assert ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
    assert ticket.escalation.reason == handoff_pb2.ESCALATION_REASON_POLICY
    assert ticket.context.call_id == "call-unprompted"
    grant = verify_join(SECRET.encode(), taken.join_token, time.time())  # no gateway token: hitl's
    assert (grant.tenant_id, grant.ticket_id, grant.operator_id) == (
        "acme",
        ticket.ticket_id,
        "op-9",
    )
    ended = await stub.HandBack(
        hitl_pb2.HandBackRequest(
            context=ACME, ticket_id=ticket.ticket_id, operator_id="op-9", end_call=True
        )
    )
    assert ended.ticket.state == hitl_pb2.TICKET_STATE_ENDED
    await expect(
        stub.TakeOver(hitl_pb2.TakeOverRequest(context=ACME, operator_id="op-9")),
        Code.INVALID_ARGUMENT,
        "context.call_id",
    )


async def test_take_over_and_hand_back_retried_across_a_hitl_kill_give_the_same_result(
    hitl: Hitl,
) -> None:
    """The operator's TakeOver (then HandBack) was stored but its reply was lost when hitl
    was killed: the same request retried after the restart answers the same ticket instead of
    FAILED_PRECONDITION (the ticket unchanged: same accepted_at, same decision time)."""

    async def restarted() -> grpc.aio.Channel:
        hitl.kill()
        hitl.start()
        await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
        return grpc.aio.insecure_channel(hitl.addr)

    take = hitl_pb2.TakeOverRequest(context=ACME, operator_id="op-1")
    back = hitl_pb2.HandBackRequest(context=ACME, operator_id="op-1", note="refund promised")
    await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
    async with grpc.aio.insecure_channel(hitl.addr) as channel:
        stub = hitl_pb2_grpc.HumanLoopStub(channel)
        ticket = (await stub.Escalate(escalation_request("call-retry"))).ticket
        take.ticket_id = back.ticket_id = ticket.ticket_id
        first = await stub.TakeOver(take)  # stored; pretend its reply never arrived
    async with await restarted() as channel:
        stub = hitl_pb2_grpc.HumanLoopStub(channel)
        again = await stub.TakeOver(take)
        assert again.ticket == first.ticket  # same state, operator, accepted_at
        assert again.ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
        assert again.join_token == first.join_token == "gateway-minted-call-retry"
        assert [e.text for e in again.transcript] == [e.text for e in first.transcript]
        await expect(
            stub.TakeOver(
                hitl_pb2.TakeOverRequest(
                    context=ACME, ticket_id=ticket.ticket_id, operator_id="op-2"
                )
            ),
            Code.FAILED_PRECONDITION,
            "already accepted by operator op-1",
        )
        follow = stub.WaitDecision(
            hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket.ticket_id)
        )
        assert (await follow.read()).ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
        handed = await stub.HandBack(back)  # stored; its reply lost too
    async with await restarted() as channel:
        stub = hitl_pb2_grpc.HumanLoopStub(channel)
        follow = stub.WaitDecision(
            hitl_pb2.WaitDecisionRequest(context=ACME, ticket_id=ticket.ticket_id)
        )
        retried = await stub.HandBack(back)
        assert retried.ticket == handed.ticket  # same decision, note and time
        assert retried.ticket.state == hitl_pb2.TICKET_STATE_HANDED_BACK
        assert retried.ticket.decision.note == "refund promised"
        states = []
        async for update in follow:
            states.append(update.ticket.state)
        assert states == [hitl_pb2.TICKET_STATE_HANDED_BACK]
        # a different request is still refused with a reason
        await expect(
            stub.HandBack(
                hitl_pb2.HandBackRequest(
                    context=ACME, ticket_id=ticket.ticket_id, operator_id="op-1", end_call=True
                )
            ),
            Code.FAILED_PRECONDITION,
            "handed_back",
        )
        listed = await stub.ListQueue(hitl_pb2.ListQueueRequest(context=ACME, include_closed=True))
        assert [t.ticket_id for t in listed.tickets] == [ticket.ticket_id]
