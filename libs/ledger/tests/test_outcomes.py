"""A call's outcome and whether it qualifies, from what happened in it."""

from __future__ import annotations

import pytest

from trunkline.ledger.outcomes import (
    CallFacts,
    Decision,
    EndReason,
    Outcome,
    QualifiedRule,
    decide,
)

pytestmark = pytest.mark.unit

BOOKING = QualifiedRule(defined=True, tool="book_appointment")
ANY_RESOLVED = QualifiedRule(defined=True, tool=None)
NONE = QualifiedRule()


@pytest.mark.parametrize(
    ("facts", "rule", "expected"),
    [
        # the qualifying tool succeeded: resolved and qualified, whoever hung up
        (CallFacts(EndReason.CALLER_HANGUP, succeeded_tools=frozenset({"book_appointment"})),
         BOOKING, Decision(Outcome.RESOLVED, qualified=True)),
        # another tool succeeded, then a goodbye: resolved, but not the qualified outcome
        (CallFacts(EndReason.AGENT_HANGUP, answered_turns=2, goodbye=True,
                   succeeded_tools=frozenset({"lookup_account"})),
         BOOKING, Decision(Outcome.RESOLVED, qualified=False)),
        # a spec whose qualified outcome names no tool: every resolved call qualifies
        (CallFacts(EndReason.AGENT_HANGUP, answered_turns=1, goodbye=True),
         ANY_RESOLVED, Decision(Outcome.RESOLVED, qualified=True)),
        (CallFacts(EndReason.AGENT_HANGUP, answered_turns=1, goodbye=True),
         NONE, Decision(Outcome.RESOLVED, qualified=False)),
        # goodbye without a single answered turn: nothing was resolved
        (CallFacts(EndReason.CALLER_HANGUP, answered_turns=0, goodbye=True),
         ANY_RESOLVED, Decision(Outcome.ABANDONED, qualified=False)),
        # hung up mid-conversation, timed out, failed, cut by an operator: abandoned
        (CallFacts(EndReason.CALLER_HANGUP, answered_turns=3), ANY_RESOLVED,
         Decision(Outcome.ABANDONED, qualified=False)),
        (CallFacts(EndReason.TIMEOUT, answered_turns=3, goodbye=True), ANY_RESOLVED,
         Decision(Outcome.ABANDONED, qualified=False)),
        (CallFacts(EndReason.ERROR), BOOKING, Decision(Outcome.ABANDONED, qualified=False)),
        (CallFacts(EndReason.ADMIN_HANGUP, answered_turns=2, goodbye=True), ANY_RESOLVED,
         Decision(Outcome.ABANDONED, qualified=False)),
        # escalated beats everything, even a booked appointment before the handoff
        (CallFacts(EndReason.CALLER_HANGUP, escalated=True,
                   succeeded_tools=frozenset({"book_appointment"})),
         BOOKING, Decision(Outcome.ESCALATED, qualified=False)),
        (CallFacts(EndReason.TRANSFERRED), BOOKING, Decision(Outcome.ESCALATED, qualified=False)),
        # the gateway's own CallEnded.qualified counts
        (CallFacts(EndReason.CALLER_HANGUP, marked_qualified=True), NONE,
         Decision(Outcome.RESOLVED, qualified=True)),
    ],
)  # fmt: skip
def test_outcome(facts: CallFacts, rule: QualifiedRule, expected: Decision) -> None:
    assert decide(facts, rule) == expected
