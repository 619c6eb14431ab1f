"""The pure rule deciding whether a finished turn's answer goes into the semantic cache."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trunkline.gateway.core.cache import CacheDecision, TurnFacts, cache_decision

pytestmark = pytest.mark.unit

GOOD = TurnFacts(
    answer="We open at 8 on weekdays.",
    heard="We open at 8 on weekdays.",
    grounded=True,
    confidence=0.8,
    min_confidence=0.25,
)


def test_a_knowledge_only_answer_heard_in_full_is_stored() -> None:
    assert cache_decision(GOOD) == CacheDecision(store=True, reason="", uses_live_data=False)


def test_clause_spacing_is_not_truncation() -> None:
    assert cache_decision(replace(GOOD, heard="We open at 8  on weekdays. ")).store


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"shadow": True}, "shadow"),
        ({"cached": True}, "cache_hit"),
        ({"answer": "  ", "heard": ""}, "empty"),
        ({"grounded": False}, "no_context"),
        ({"confidence": 0.1}, "low_confidence"),
        ({"interrupted": True, "heard": "We open"}, "truncated"),
        ({"heard": "We open at 8"}, "truncated"),
    ],
)
def test_each_rule_skips(change: dict[str, object], reason: str) -> None:
    decision = cache_decision(replace(GOOD, **change))  # type: ignore[arg-type]
    assert decision == CacheDecision(store=False, reason=reason, uses_live_data=False)


def test_tool_calls_or_live_records_skip_and_mark_live_data() -> None:
    for facts, reason in [
        (replace(GOOD, tool_calls=1), "tool_calls"),
        (replace(GOOD, live_records=True), "live_data"),
        (replace(GOOD, tool_calls=2, live_records=True), "tool_calls"),
    ]:
        assert cache_decision(facts) == CacheDecision(False, reason, uses_live_data=True)


def test_confidence_at_the_threshold_is_in_domain() -> None:
    assert cache_decision(replace(GOOD, confidence=0.25)).store
