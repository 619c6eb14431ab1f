"""The answers benchmark's question loader, scoring and strategies (no models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.answers.questions import (
    QUESTIONS,
    Question,
    QuestionSetError,
    load_questions,
    parse_questions,
)
from benchmarks.answers.scoring import KnownFacts, judge, normalise, said
from benchmarks.answers.strategies import Generated, Turn, guarded_llm, raw_llm
from trunkline.agents import load_agent_spec
from trunkline.gateway.core.grounding import Support
from trunkline.gateway.core.replies import GuardPolicy, ReplyPolicy, Retrieved

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BLOCK = (
    "[1] ## When is Acme Dental open?\nAcme Dental is open Monday to Friday from 8 am to 6 pm, "
    "and on Saturday from 9 am to 1 pm. We are closed on Sunday and on public holidays."
)


def test_times_prices_and_spelled_numbers_normalise_alike() -> None:
    for text in ("nine a.m.", "9:00 AM", "9am", "Nine AM"):
        assert normalise(text) == "9 am", text
    assert normalise("$95") == normalise("ninety-five dollars") == "95 dollars"
    assert normalise("one hundred and fifty dollars") == "150 dollars"
    assert normalise("two hundred ninety nine dollars") == "299 dollars"
    assert normalise("We're open until 12:30 p.m.") == "we are open until 12:30 pm"


def test_said_matches_whole_words_and_plurals() -> None:
    assert said("filling", "We do fillings and whitening.")
    assert said("credit card", "We accept credit cards.")
    assert not said("9 am", "from 19 am")  # not a part of another number
    assert not said("199", "It costs 299 dollars.")
    assert not said("closed", "We are open on Sunday.")


def test_judge_needs_every_fact_and_no_forbidden_phrase() -> None:
    question = Question("q", "Hours on Saturday?", (("9 am",), ("1 pm", "13:00")), ("12:30",))
    assert judge(question, "On Saturday we open from nine a.m. to 1 p.m.").correct
    missing = judge(question, "On Saturday we open at 9 am.")
    assert not missing.correct
    assert missing.missing == ("1 pm",)
    wrong = judge(question, "From 9 am to 1 pm, or until 12:30 on holidays.")
    assert not wrong.correct
    assert wrong.forbidden == ("12:30",)


def test_invented_numbers_times_and_prices_are_found() -> None:
    known = KnownFacts(["Open 9 am to 1 pm. A filling costs 150 dollars. Press 9."])
    assert known.invented("We open at nine in the morning, press 9, it is 150 dollars.") == ()
    assert known.invented("We open at 9 pm.") == ("9 pm",)  # the hour is known, the time not
    assert known.invented("A filling is $120.") == ("120 dollars",)
    assert known.invented("We close at 12:30.") == ("12:30",)
    assert known.invented("It takes 45 minutes.", expected=["45 minutes"]) == ()


def test_the_question_set_loads_and_its_expected_facts_come_from_the_agents_sources() -> None:
    questions = load_questions()
    assert questions.agent == "acme-dental"
    assert len(questions.questions) >= 30
    spec = load_agent_spec(ROOT / "agents" / f"{questions.agent}.yaml")
    knowledge = ROOT / "agents" / questions.agent / "knowledge"
    sources = " ".join(
        [spec.system_prompt, *(p.read_text() for p in sorted(knowledge.rglob("*.md")))]
    )
    for question in questions.questions:
        for fact in question.must_contain:
            assert any(said(alternative, sources) for alternative in fact), (question.id, fact)
            for phrase in question.must_not_contain:  # a right answer cannot be a wrong one
                assert not any(said(phrase, alternative) for alternative in fact), question.id


def test_a_bad_question_file_names_the_file_and_line() -> None:
    path = Path("q.yaml")
    good = "agent: a\ntenant: t\nquestions:\n  - id: x\n    ask: Hours?\n    must_contain: [9 am]\n"
    assert parse_questions(good, path).questions[0].must_contain == (("9 am",),)
    with pytest.raises(QuestionSetError, match=r"q\.yaml:4: unknown key 'answer'"):
        parse_questions(good.replace("    ask:", "    answer: x\n    ask:"), path)
    with pytest.raises(QuestionSetError, match=r"q\.yaml:7: question id 'x' repeats .*line 4"):
        parse_questions(good + "  - id: x\n    ask: Again?\n    must_contain: [1 pm]\n", path)
    with pytest.raises(QuestionSetError, match=r"q\.yaml:4: question 'x': 'must_contain'"):
        parse_questions(good.replace("must_contain: [9 am]", "must_contain: []"), path)
    with pytest.raises(QuestionSetError, match=r"q\.yaml:2: not valid YAML: mapping values"):
        parse_questions("agent: a\ntenant: t: u\n", path)
    with pytest.raises(QuestionSetError, match=r"nope\.yaml: cannot read"):
        load_questions(QUESTIONS.parent / "nope.yaml")


def test_the_guard_holds_back_an_invented_time_and_speaks_the_fallback() -> None:
    support = Support(["You are Ava, the receptionist of Acme Dental.", BLOCK])
    retrieved = Retrieved(block=BLOCK, confidence=0.7)
    guard = GuardPolicy()
    turn = Turn("Are you open on Saturday?", retrieved, support, ReplyPolicy(), guard, 3, _zero)
    later = Generated((("We are open", 0.1), ("on Saturday until 12:30 pm.", 0.3)))
    answer = guarded_llm(turn, later)
    assert answer.spoken[0] == "We are open"  # something was said: the safe line follows
    assert " ".join(answer.spoken[1:]) == guard.safe_line
    assert answer.held_back == "on Saturday until 12:30 pm."
    assert answer.fallback == "safe_line"
    assert answer.unsupported == ("time:12:30",)
    assert answer.first_s == 0.1
    assert raw_llm(later).text == "We are open on Saturday until 12:30 pm."

    first = Generated((("Saturday until 12:30 pm [1].", 0.2),))
    answer = guarded_llm(turn, first)
    assert answer.fallback == "best_passage"
    assert "9 am to 1 pm" in answer.text
    assert answer.first_s == 0.2


def _zero() -> float:
    return 0.0
