"""The ticket state machine, step by step, with explicit times (no clock, no I/O)."""

from __future__ import annotations

import json

import pytest

from trunkline.hitl.core import tickets as core
from trunkline.hitl.core.summary import extractive_summary
from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    Closed,
    EscalationInfo,
    Held,
    InvalidRequest,
    Kind,
    Line,
    Outcome,
    State,
    WrongState,
)

pytestmark = pytest.mark.unit

CALL = CallRef("acme", "call-1")
T0 = 1_000.0


def escalation(timeout: float = 600.0) -> core.Ticket:
    return core.new_escalation(
        "t1",
        call=CALL,
        info=EscalationInfo("caller_request"),
        transcript=(),
        summary="",
        now=T0,
        timeout=timeout,
    )


def approval(timeout: float = 60.0) -> core.Ticket:
    return core.new_approval(
        "a1",
        call=CALL,
        info=ApprovalInfo("tc-1", "refund", '{"amount": 40}'),
        transcript=(),
        summary="",
        now=T0,
        timeout=timeout,
    )


def test_escalation_claim_accept_hand_back() -> None:
    ticket = escalation()
    assert ticket.state is State.QUEUED
    assert ticket.is_open
    claimed = core.claim(ticket, "op-1", T0 + 1, claim_timeout=30)
    assert (claimed.state, claimed.operator_id, claimed.claim_expires_at) == (
        State.CLAIMED,
        "op-1",
        T0 + 31,
    )
    taken = core.accept(claimed, "op-1", T0 + 5)
    assert taken.state is State.TAKEN_OVER
    assert taken.accepted_at == T0 + 5
    assert not taken.is_open
    assert not taken.is_terminal
    assert core.tick(taken, T0 + 10_000) is taken  # an operator on the call never expires
    back = core.hand_back(taken, "op-1", T0 + 60, note="promised a refund of 40")
    assert back.state is State.HANDED_BACK
    assert back.is_terminal
    assert back.decision is not None
    assert back.decision.note == "promised a refund of 40"
    assert core.change_of(taken, back) == "handed_back"


def test_end_call_and_hand_back_only_by_the_operator_on_the_line() -> None:
    taken = core.accept(escalation(), "op-1", T0)
    with pytest.raises(Held, match="op-1"):
        core.hand_back(taken, "op-2", T0 + 1)
    ended = core.hand_back(taken, "op-1", T0 + 2, end_call=True)
    assert ended.state is State.ENDED
    with pytest.raises(Closed, match="ended"):
        core.hand_back(ended, "op-1", T0 + 3)
    with pytest.raises(WrongState, match="not taken over"):
        core.hand_back(escalation(), "op-1", T0)


def test_a_claim_of_another_operator_blocks_until_it_lapses_then_requeues() -> None:
    claimed = core.claim(escalation(), "op-1", T0, claim_timeout=30)
    with pytest.raises(Held, match="claimed by operator op-1"):
        core.accept(claimed, "op-2", T0 + 29.9)
    assert core.tick(claimed, T0 + 29.9) is claimed
    requeued = core.tick(claimed, T0 + 30)
    assert (requeued.state, requeued.operator_id, requeued.requeues) == (State.QUEUED, "", 1)
    assert core.change_of(claimed, requeued) == "requeued"
    # after the lapse another operator may take it even before the tick was stored
    assert core.accept(claimed, "op-2", T0 + 31).operator_id == "op-2"


def test_an_accepted_ticket_cannot_be_accepted_again() -> None:
    taken = core.accept(escalation(), "op-1", T0)
    with pytest.raises(Held, match="already accepted by operator op-1"):
        core.accept(taken, "op-2", T0 + 1)
    with pytest.raises(Held):
        core.claim(taken, "op-2", T0 + 1, claim_timeout=30)


def test_open_tickets_expire_and_then_refuse_actions() -> None:
    ticket = escalation(timeout=10)
    assert core.next_deadline(ticket) == T0 + 10
    with pytest.raises(Closed, match="expired"):
        core.accept(ticket, "op-1", T0 + 10)
    expired = core.tick(ticket, T0 + 10)
    assert expired.state is State.EXPIRED
    assert expired.decision is not None
    assert expired.decision.outcome is Outcome.EXPIRED
    assert core.next_deadline(expired) is None
    claimed = core.claim(escalation(timeout=10), "op-1", T0, claim_timeout=30)
    assert claimed.claim_expires_at == T0 + 10  # a claim never outlives the ticket
    assert core.tick(claimed, T0 + 10).state is State.EXPIRED


def test_approval_approve_edit_deny() -> None:
    approved = core.decide(approval(), "op-1", T0 + 2, Outcome.APPROVED, note="ok")
    assert approved.state is State.DECIDED
    assert core.change_of(approval(), approved) == "approved"
    edited = core.decide(
        approval(), "op-1", T0 + 2, Outcome.APPROVED, arguments_json='{"amount": 20}'
    )
    assert edited.decision is not None
    assert json.loads(edited.decision.arguments_json) == {"amount": 20}
    denied = core.decide(approval(), "op-2", T0 + 3, Outcome.DENIED, note="too much")
    assert denied.decision is not None
    assert denied.decision.outcome is Outcome.DENIED
    assert core.change_of(approval(), denied) == "denied"
    with pytest.raises(Closed, match="decided"):
        core.decide(denied, "op-1", T0 + 4, Outcome.APPROVED)
    expired = core.tick(approval(timeout=60), T0 + 60)
    with pytest.raises(Closed, match="expired"):
        core.decide(expired, "op-1", T0 + 61, Outcome.APPROVED)


def test_bad_decisions_are_refused_with_reasons() -> None:
    with pytest.raises(InvalidRequest, match="line 1, column"):
        core.decide(approval(), "op-1", T0, Outcome.APPROVED, arguments_json="{amount: 1")
    with pytest.raises(InvalidRequest, match="JSON object"):
        core.decide(approval(), "op-1", T0, Outcome.APPROVED, arguments_json="[1]")
    with pytest.raises(InvalidRequest, match="only with approving"):
        core.decide(approval(), "op-1", T0, Outcome.DENIED, arguments_json='{"a": 1}')
    with pytest.raises(InvalidRequest, match="approved or denied"):
        core.decide(approval(), "op-1", T0, Outcome.EXPIRED)
    with pytest.raises(WrongState, match="escalation"):
        core.decide(escalation(), "op-1", T0, Outcome.APPROVED)
    with pytest.raises(WrongState, match="approval"):
        core.accept(approval(), "op-1", T0)
    with pytest.raises(InvalidRequest, match="operator id"):
        core.claim(escalation(), "op 1", T0, claim_timeout=1)
    with pytest.raises(InvalidRequest, match=r"tenant 'ac\.me'"):
        core.new_escalation(
            "t",
            call=CallRef("ac.me"),
            info=EscalationInfo(),
            transcript=(),
            summary="",
            now=T0,
            timeout=1,
        )
    with pytest.raises(InvalidRequest, match="shadow traffic"):
        core.new_escalation(
            "t",
            call=CallRef("acme", "c", shadow=True),
            info=EscalationInfo(),
            transcript=(),
            summary="",
            now=T0,
            timeout=1,
        )
    with pytest.raises(InvalidRequest, match="tool arguments"):
        core.new_approval(
            "t",
            call=CALL,
            info=ApprovalInfo("x", "refund", "not json"),
            transcript=(),
            summary="",
            now=T0,
            timeout=1,
        )


def test_dismissing_an_escalation_is_a_denial() -> None:
    dismissed = core.decide(escalation(), "op-1", T0, Outcome.DENIED, note="not needed")
    assert dismissed.state is State.DECIDED
    assert dismissed.kind is Kind.ESCALATION
    assert core.change_of(escalation(), dismissed) == "dismissed"


def test_cancel_keeps_an_accepted_callback_and_ends_a_live_handoff() -> None:
    cancelled = core.cancel(escalation(), T0 + 1, "call ended")
    assert cancelled.state is State.CANCELLED
    assert cancelled.decision is not None
    assert cancelled.decision.note == "call ended"
    assert core.cancel(cancelled, T0 + 2) is cancelled
    offered = core.offer_callback(
        escalation(timeout=30), T0 + 20, accepted=True, number="+14155550100", keep_for=3600
    )
    assert offered.callback is not None
    assert offered.callback.number == "+14155550100"
    assert offered.expires_at == T0 + 20 + 3600
    assert core.change_of(escalation(), offered) == "callback"
    assert core.cancel(offered, T0 + 21, "call ended") is offered  # stays for the callback
    declined = core.offer_callback(
        escalation(timeout=30), T0 + 20, accepted=False, number="", keep_for=3600
    )
    assert declined.expires_at == T0 + 30
    assert core.cancel(declined, T0 + 21).state is State.CANCELLED
    taken = core.accept(escalation(), "op-1", T0)
    assert core.cancel(taken, T0 + 5, "caller hung up").state is State.ENDED
    with pytest.raises(WrongState, match="approval"):
        core.offer_callback(approval(), T0, accepted=True, number="", keep_for=1)


def test_extractive_summary_picks_the_callers_telling_sentences_in_order() -> None:
    lines = [
        Line("agent", "Hello, this is Bright Dental. How can I help?"),
        Line("caller", "Hi. My crown came loose yesterday evening."),
        Line("agent", "I'm sorry to hear that. Can you come in on Tuesday?"),
        Line("caller", "No. The weather is nice today. The crown hurts and the crown is loose."),
        Line("caller", "This is the third time I am calling. I want to talk to a real person!"),
    ]
    summary = extractive_summary(lines, "caller_request", max_sentences=3)
    assert summary.startswith("Escalated: caller request. Caller: ")
    assert "weather" not in summary
    crown = summary.index("My crown came loose")
    assert crown < summary.index("The crown hurts") < summary.index("real person")
    assert extractive_summary([], "frustration") == "Escalated: frustration."
    long = [Line("caller", "word " * 200 + "refund refund.")]
    assert len(extractive_summary(long, "", max_chars=120)) <= 120


def test_take_over_and_hand_back_again_by_the_same_operator_change_nothing() -> None:
    # A retry after a lost reply (or a hitl restart between the write and the reply).
    taken = core.accept(escalation(), "op-1", T0)
    assert core.accept(taken, "op-1", T0 + 5) is taken
    with pytest.raises(Held, match="already accepted by operator op-1"):
        core.accept(taken, "op-2", T0 + 5)
    back = core.hand_back(taken, "op-1", T0 + 60, note="refund promised")
    assert core.hand_back(back, "op-1", T0 + 61, note="refund promised") is back
    with pytest.raises(Held, match="op-1"):
        core.hand_back(taken, "op-2", T0 + 61, note="refund promised")
    for retry in (
        lambda: core.hand_back(back, "op-2", T0 + 61, note="refund promised"),  # not theirs
        lambda: core.hand_back(back, "op-1", T0 + 61, note="another note"),  # not the same
        lambda: core.hand_back(back, "op-1", T0 + 61, note="refund promised", end_call=True),
    ):
        with pytest.raises(Closed, match="handed_back"):
            retry()
    ended = core.hand_back(taken, "op-1", T0 + 60, end_call=True)
    assert core.hand_back(ended, "op-1", T0 + 62, end_call=True) is ended
    # a call the caller hung up on is ENDED by the gateway's cancel: the operator's end is
    # refused, not mistaken for their own
    hung_up = core.cancel(taken, T0 + 30, "the caller hung up")
    assert hung_up.state is State.ENDED
    with pytest.raises(Closed, match="ended"):
        core.hand_back(hung_up, "op-1", T0 + 31, note="the caller hung up", end_call=True)


def test_the_offer_then_the_callers_answer() -> None:
    # The gateway records the offer when it asks, then the answer the caller gives.
    asked = core.offer_callback(escalation(timeout=30), T0 + 20, accepted=False, number="",
                                keep_for=3600)  # fmt: skip
    assert asked.callback == core.Callback(False, "", T0 + 20)
    assert asked.expires_at == T0 + 30
    answered = core.offer_callback(asked, T0 + 26, accepted=True, number="4155550100",
                                   keep_for=3600)  # fmt: skip
    assert answered.callback == core.Callback(True, "4155550100", T0 + 20)  # the offer's time
    assert answered.expires_at == T0 + 26 + 3600
    assert core.change_of(asked, answered) == "callback"
    assert core.cancel(answered, T0 + 27, "call ended") is answered
