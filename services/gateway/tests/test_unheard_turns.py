"""A turn whose reply the caller spoke over before a word of it played is not a turn of its own:
its words go on in the next turn's question (context and plan), and the escalation does not
count it. The eval found it: Whisper cut "My gums bleed a little when I brush my teeth. Should
I get that looked at?" at the period, the caller talked over the first reply unheard, "Should I
get that looked at?" alone was deflected, and two failed turns in a row escalated the call."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.core.escalation import EscalationPolicy
from trunkline.gateway.core.events import Message
from trunkline.gateway.core.replies import Plan, ReplySource, question_of
from trunkline.gateway.escalations import Escalations, HumanSide, Sentiment
from trunkline.gateway.fakes import FakeHumanLoop
from trunkline.gateway.peers.types import CallInfo, ContextResult
from trunkline.gateway.records import TurnRecord

pytestmark = pytest.mark.unit

CALL = CallInfo("CA1", "acme", "acme-dental", "1")
GUMS = "My gums bleed a little when I brush my teeth."
LOOKED_AT = "Should I get that looked at?"


def test_the_words_of_a_turn_whose_reply_went_unheard_belong_to_the_next_question() -> None:
    unheard = (Message("agent", "Hello."), Message("user", GUMS))
    assert question_of(unheard, LOOKED_AT) == f"{GUMS} {LOOKED_AT}"
    answered = (*unheard, Message("agent", "I can't judge that", truncated=True))
    assert question_of(answered, LOOKED_AT) == LOOKED_AT  # a word of the reply was heard
    assert question_of((), LOOKED_AT) == LOOKED_AT


def _turn(escalations: Escalations, turn_id: int, **record: object) -> object:
    """One deflected turn through the escalation (planned, then finished as ``record`` says)."""
    done = TurnRecord(CALL, turn_id, **record)  # type: ignore[arg-type]
    done.context = ContextResult(confidence=0.0)
    with TracerProvider().get_tracer("test").start_as_current_span("turn"):
        plan = Plan("out_of_domain", ReplySource.DEFLECTION, "Sorry.")  # type: ignore[arg-type]
        escalations.check(LOOKED_AT, done, plan)
        return escalations.finished(done)


def test_a_turn_spoken_over_unheard_does_not_count_as_a_failed_turn() -> None:
    policy = EscalationPolicy(max_failed_turns=2)
    escalations = Escalations(HumanSide(FakeHumanLoop(), Sentiment(), policy))
    assert _turn(escalations, 1, interrupted=True, agent_text="") is None  # unheard: not counted
    assert _turn(escalations, 2, agent_text="Sorry.") is None  # the first failure
    # ... and the second in a row escalates, as before (heard, even if cut short)
    decision = _turn(escalations, 3, interrupted=True, agent_text="Sorry")
    assert decision is not None
