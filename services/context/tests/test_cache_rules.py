"""The semantic cache's pure rules: what is stored, which key terms must agree, what is a hit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trunkline.context.agents import Agents
from trunkline.context.core.cache_match import HitRule, decide, screen, to_verify
from trunkline.context.core.cache_policy import (
    REPLY_SOURCES,
    AnswerFacts,
    CacheScope,
    entry_id,
    store_decision,
)
from trunkline.context.core.key_terms import agree, key_terms
from trunkline.context.core.types import CachedAnswer, CacheEntry, EntrySelector

pytestmark = pytest.mark.unit

GOOD = AnswerFacts(
    heard="We open at 8 on weekdays.",
    generated="We open at 8 on weekdays.",
    grounded=True,
    reply_source="llm",
    retrieval_confidence=0.8,
)


# --- the store rule ----------------------------------------------------------------------------


def test_a_grounded_llm_or_knowledge_answer_heard_in_full_is_stored() -> None:
    assert store_decision(GOOD, min_confidence=0.25).store
    assert store_decision(replace(GOOD, reply_source="knowledge"), 0.25).store
    assert store_decision(replace(GOOD, heard="We open at 8  on weekdays. "), 0.25).store


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"heard": "  "}, "empty"),
        ({"shadow": True}, "shadow"),
        ({"grounded": False}, "not_grounded"),
        ({"retrieval_confidence": 0.1}, "low_confidence"),
        ({"interrupted": True, "heard": "We open"}, "truncated"),
        ({"heard": "We open at 8"}, "truncated"),
        ({"tool_calls": 1}, "tool_calls"),
        ({"uses_live_data": True}, "live_data"),
    ],
)
def test_each_rule_skips_with_its_reason(change: dict[str, object], code: str) -> None:
    decision = store_decision(replace(GOOD, **change), min_confidence=0.25)  # type: ignore[arg-type]
    assert not decision.store
    assert decision.reason.split(":")[0] == code


@pytest.mark.parametrize(
    "source", [*sorted(REPLY_SOURCES - {"llm", "knowledge"}), "", "something-new"]
)
def test_only_llm_and_knowledge_replies_are_stored(source: str) -> None:
    decision = store_decision(replace(GOOD, reply_source=source))
    assert not decision.store
    assert decision.reason.startswith("reply_source")


def test_a_human_written_answer_needs_no_guard_but_never_tools_live_data_or_truncation() -> None:
    human = AnswerFacts(heard="We are closed on Easter Monday.", human_written=True)
    assert store_decision(human, min_confidence=0.5).store
    assert store_decision(replace(human, reply_source="deflection")).store
    assert not store_decision(replace(human, tool_calls=2)).store
    assert not store_decision(replace(human, uses_live_data=True)).store
    assert not store_decision(replace(human, interrupted=True)).store


def test_confidence_at_the_threshold_is_in_domain() -> None:
    assert store_decision(replace(GOOD, retrieval_confidence=0.25), min_confidence=0.25).store


def test_entry_ids_differ_by_role_tenant_agent_and_kb_version() -> None:
    base = CacheScope("acme-dental", "acme-dental.1", "caller", 3)
    ids = {
        entry_id(scope, "Are you open on Saturday?")
        for scope in (
            base,
            replace(base, role="operator"),
            replace(base, tenant="volt-energy"),
            replace(base, agent="acme-dental.2"),
            replace(base, kb_version=4),
        )
    }
    assert len(ids) == 5
    assert entry_id(base, "q") == entry_id(base, "q")


def test_entry_selector_picks_by_agent_name_or_version_role_and_id() -> None:
    entry = CacheEntry("ab12", "acme-dental.1.0.0", "caller", 3, "q", "a", (), 0, 10)
    assert EntrySelector().picks(entry)
    assert EntrySelector(agent="acme-dental").picks(entry)
    assert EntrySelector(agent="acme-dental.1.0.0").picks(entry)
    assert not EntrySelector(agent="acme").picks(entry)
    assert not EntrySelector(role="operator").picks(entry)
    assert EntrySelector(entry_ids=("ab12",)).picks(entry)
    assert not EntrySelector(entry_ids=("cd34",)).picks(entry)


# --- key terms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Do you see children under 5?", "Do you treat kids younger than five?"),
        ("Can I get an appointment at 8 am?", "Any appointments at eight in the morning?"),
        ("Do you close at 1 pm?", "Do you close at 13:00?"),
        ("Is it open till 9:30pm?", "Is it open till 21:30?"),
        ("Is there a plan over 500 dollars?", "Is there a plan for more than $500?"),
        ("Is it twenty four months?", "Is it 24 months?"),
        ("Is it one hundred and fifty dollars?", "Is it $150?"),
        ("Can I pay on the 1st?", "Can I pay on the first?"),
        ("When are you open on Saturdays?", "What are your hours on a Saturday?"),
        ("Who do I call in an emergency?", "What should I do in an emergency?"),
        ("How do I turn off roaming?", "How can I switch roaming off?"),
        ("Can you tell me when you open?", "When do you open?"),
        ("Is there parking?", "Can I park there?"),
        ("How many months is the contract?", "How long is the contract?"),
        ("I'm moving house, what do I need to do?", "What do I need to do when moving house?"),
        ("Does Dr Patel work Thursdays?", "Is Dr Patel in on Thursday?"),
        ("Is it £50 to leave?", "Does it cost 50 pounds to exit?"),
        ("Is the fee 20%?", "Is the fee 20 percent?"),
        ("How long does the tariff last?", "How long is the tariff?"),
        ("Which one is cheaper?", "What is cheaper?"),
        ("May I book a visit?", "Can I book a visit?"),
        ("Do you accept cash?", "Can I pay in cash?"),
        ("What time do you open?", "What are your opening hours?"),
    ],
)
def test_equal_key_terms_in_different_words_agree(a: str, b: str) -> None:
    assert agree(a, b) == ()


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Are you open on Mondays?", "Are you open on Tuesdays?", "day"),
        ("Are you open on Saturday?", "Are you open?", "day"),
        ("Is it 12 months?", "Is it twenty four months?", "number"),
        ("Can I come at 8 am?", "Can I come at 8 pm?", "time"),
        ("Can I come at 8?", "Can I come at half past eight?", "time"),
        ("Do prices rise in April?", "Do prices rise in May?", "month"),
        ("Is it $50?", "Is it £50?", "money"),
        ("Can I pay on the 1st?", "Can I pay on the 15th?", "ordinal"),
        ("Is Dr Patel in?", "Is Dr Okafor in?", "name"),
        ("Can I pay in cash?", "Why can't I pay in cash?", "negation"),
        ("Do I need to submit a reading?", "Do I not need to submit a reading?", "negation"),
        ("Is there a fee to join?", "Is there a fee to leave?", "join/leave"),
        ("When do you open on Friday?", "When do you close on Friday?", "open/close"),
        ("How do I book?", "How do I cancel?", "book/cancel/move"),
        ("Can I increase it?", "Can I lower it?", "increase/decrease"),
        ("Can I eat before?", "Can I eat after?", "before/after"),
        ("How do I add a person?", "How do I remove a person?", "add/remove"),
        ("Do you buy solar power?", "Do you sell solar power?", "buy/sell"),
        ("When do I start?", "When do I stop?", "start/stop"),
        ("What is the standing charge?", "What is the standing charge for gas?", "gas/"),
        ("What is the peak rate?", "What is the off-peak rate?", "peak/off-peak"),
        ("How much is a check-up?", "How much is a check-up for a child?", "adult/child"),
        ("Do I move in on Friday?", "Do I move out on Friday?", "in/out"),
        ("Can I turn the heating on?", "Can I turn the heating off?", "on/off"),
        ("How do I waive a late fee?", "Is there a late fee?", "asks procedure vs yes_no"),
        ("How much is a filling?", "How long does a filling take?", "asks amount vs duration"),
        ("Where is the practice?", "Is the practice open?", "asks place vs yes_no"),
    ],
)
def test_different_key_terms_disagree(a: str, b: str, why: str) -> None:
    conflicts = agree(a, b)
    assert any(c.startswith(why) for c in conflicts), conflicts
    assert agree(b, a), "disagreement is symmetric"


def test_a_lenient_group_differs_only_when_both_name_a_side() -> None:
    assert agree("Do you accept cash?", "Can I pay in cash?") == ()  # accept named once
    assert agree("Do you accept cards?", "Do you refuse cards?")


def test_names_are_capitalised_words_inside_the_sentence_codes_and_acronyms() -> None:
    facts = key_terms("Is the Fixed 12 tariff available with an EV or a Model X2?").facts
    assert {("e", "fixed"), ("e", "ev"), ("e", "model"), ("e", "x2"), ("n", "12")} <= facts
    assert ("e", "is") not in facts  # the first word of a sentence is no name
    assert key_terms("May I call on 5 May?").facts == {("n", "5"), ("m", "5")}


# --- the hit rule ------------------------------------------------------------------------------


def cand(query: str, similarity: float, entry: str = "") -> CachedAnswer:
    return CachedAnswer(query, f"answer to {query}", (), similarity, entry or query[:8])


RULE = HitRule(threshold=0.8, verify_floor=0.6, equivalence_threshold=0.5, fallback_threshold=0.9)


def test_a_candidate_whose_key_terms_disagree_is_never_served_however_close() -> None:
    found = [cand("Are you open on Tuesdays?", 0.97)]
    verdict = decide(screen("Are you open on Mondays?", found, RULE), RULE)
    assert verdict.hit is None
    assert verdict.detail == "miss: key terms differ (day monday vs tuesday) at 0.970"


def test_the_first_agreeing_candidate_over_the_threshold_hits() -> None:
    found = [cand("Are you open on Tuesdays?", 0.95), cand("Are you open on Mondays?", 0.85)]
    verdict = decide(screen("Are you open on a Monday?", found, RULE), RULE)
    assert verdict.hit is not None
    assert verdict.hit.query == "Are you open on Mondays?"
    assert verdict.detail == "hit 0.850"


def test_cosine_below_the_threshold_misses() -> None:
    verdict = decide(
        screen("When do you open?", [cand("What time do you open?", 0.79)], RULE), RULE
    )
    assert verdict.hit is None
    assert verdict.detail == "miss: 0.790 < 0.80"
    assert decide(screen("x", [], RULE), RULE).detail == "miss"


def test_without_key_terms_cosine_alone_decides() -> None:
    cosine_only = replace(RULE, key_terms=False)
    found = [cand("Are you open on Tuesdays?", 0.92)]
    assert decide(screen("Are you open on Mondays?", found, cosine_only), cosine_only).hit


def test_the_equivalence_check_decides_among_agreeing_candidates_over_its_floor() -> None:
    found = [
        cand("Are you open on Tuesdays?", 0.95),
        cand("Is the office open on a Monday?", 0.7),
        cand("Do you work Mondays?", 0.65),
        cand("Monday opening?", 0.55),
    ]
    screened = screen("Are you open on Mondays?", found, RULE)
    pending = to_verify(screened, RULE)
    assert [c.query for c in pending] == ["Is the office open on a Monday?", "Do you work Mondays?"]
    verdict = decide(screened, RULE, [0.3, 0.8])
    assert verdict.hit is not None
    assert verdict.hit.query == "Do you work Mondays?"
    assert "equivalence 0.80" in verdict.detail
    assert decide(screened, RULE, [0.3, 0.4]).hit is None
    with pytest.raises(ValueError, match="2 candidates"):
        decide(screened, RULE, [0.9])


def test_a_failed_equivalence_check_falls_back_to_a_stricter_cosine() -> None:
    screened = screen("When do you open?", [cand("What time do you open?", 0.85)], RULE)
    assert decide(screened, RULE).hit is not None
    failed = decide(screened, RULE, check_failed=True)
    assert failed.hit is None
    assert failed.detail == "miss: 0.850 < 0.90"
    close = screen("When do you open?", [cand("When do you open today?", 0.93)], RULE)
    assert decide(close, RULE).hit is None  # "today" is a day: key terms differ
    near = screen("When do you open?", [cand("When do you open?", 0.99)], RULE)
    assert decide(near, RULE, check_failed=True).detail == "hit (fallback) 0.990"


def test_a_machine_answer_is_stored_only_where_the_knowledge_answers_confidently() -> None:
    """The line is the agent's ``grounding.confident_at`` (at least its out-of-domain line): the
    eval's cache held a whitening price for a misheard toothache (a passage matched by one word,
    retrieval 0.3) and a model's "Your count is 441-729." for an account number, and replayed
    them to the next callers."""
    agents = Agents.load(Path(__file__).resolve().parents[3] / "agents")
    line = agents.cache_line("acme-dental")
    assert line == 0.5  # confident_at 0.5 over min_confidence 0.25
    assert Agents().cache_line("unknown") == 0.5  # the defaults
    rescued = replace(GOOD, reply_source="knowledge", retrieval_confidence=0.3)
    assert store_decision(rescued, min_confidence=line).reason.startswith("low_confidence")
    assert store_decision(replace(rescued, retrieval_confidence=0.5), min_confidence=line).store
    written = replace(rescued, human_written=True)  # a person's answer: stored whatever the score
    assert store_decision(written, min_confidence=line).store
