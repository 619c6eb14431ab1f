"""How a turn is answered: intents, the knowledge strategy, and the best passage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trunkline.gateway.core.extractive import best_passage
from trunkline.gateway.core.replies import (
    Intent,
    ReplyPolicy,
    ReplySource,
    Retrieved,
    plan_reply,
)

pytestmark = pytest.mark.unit

BLOCK = """[1] # Opening hours and location
## When is Acme Dental open?
Acme Dental is open Monday to Friday from 8 am to 6 pm, and on Saturday from 9 am to 1 pm.
We are closed on Sunday and on public holidays.
[2] ## Where is the practice?
Acme Dental is at 120 Main Street, Springfield, on the second floor above the pharmacy.
Free parking is behind the building; the number 4 bus stops right outside.
[3] ## Teeth whitening
In-office teeth whitening costs 299 dollars for one session of about 90 minutes. Book it..."""
POLICY = ReplyPolicy(min_confidence=0.25, min_stt_confidence=0.4)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (
            "What are your opening hours on Saturday?",
            "Acme Dental is open Monday to Friday from 8 am to 6 pm, and on Saturday from 9 am "
            "to 1 pm.",
        ),
        ("Are you open on Sundays?", "We are closed on Sunday and on public holidays."),
        (
            "Where is the practice?",
            "Acme Dental is at 120 Main Street, Springfield, on the second floor above the "
            "pharmacy.",
        ),
        (
            "How much is teeth whitening?",
            "In-office teeth whitening costs 299 dollars for one session of about 90 minutes.",
        ),
    ],
)
def test_best_passage_answers_from_the_matching_sentence(question: str, answer: str) -> None:
    assert best_passage(question, BLOCK).text == answer


def test_best_passage_is_empty_when_nothing_matches() -> None:
    assert best_passage("Who won the world cup?", BLOCK).text == ""
    assert best_passage("Where is the practice?", "").text == ""


def test_best_passage_leaves_out_a_cut_tail_and_shortens_for_the_ear() -> None:
    passage = best_passage("book whitening", BLOCK)
    assert "Book it" not in passage.text  # the block's "..." tail
    short = best_passage("opening hours on Saturday", BLOCK, max_words=10)
    assert len(short.text.split()) <= 10
    assert short.text.endswith(".")


TARIFFS = """[1] ## Volt Fixed 12 (fixed tariff)
Volt Fixed 12 fixes your unit prices for 12 months. Electricity costs 24 cents per kilowatt hour
and gas costs 8 cents per kilowatt hour for the whole 12 months.
[2] Electricity currently costs 22 cents per kilowatt hour on Volt Flex, our variable tariff.
[3] ## Outages
For a power cut, call the outage line at 1-800-555-0142.
[4] ## Gas emergencies
If you smell gas, leave the building and call the gas emergency line at 1-800-555-0199."""


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (  # the eval's wrong answer: the fixed tariff's sentence shares more words
            "What does electricity cost on the variable tariff right now?",
            "Electricity currently costs 22 cents per kilowatt hour on Volt Flex, our variable"
            " tariff.",
        ),
        ("How much is electricity on the fixed tariff?", "Electricity costs 24 cents per"
         " kilowatt hour and gas costs 8 cents per kilowatt hour for the whole 12 months."),
        ("I can smell gas, who do I call?", "If you smell gas, leave the building and call the"
         " gas emergency line at 1-800-555-0199."),
        ("My power is off, who do I call?", "For a power cut, call the outage line at"
         " 1-800-555-0142."),
    ],
)  # fmt: skip
def test_a_passage_about_the_other_side_of_a_contrast_never_answers(
    question: str, answer: str
) -> None:
    assert best_passage(question, TARIFFS).text == answer


def test_a_question_naming_no_side_may_take_either() -> None:
    said = best_passage("What do your tariffs cost per kilowatt hour?", TARIFFS).text
    assert "cents per kilowatt hour" in said


def _retrieved(**kwargs: object) -> Retrieved:
    values: dict[str, object] = {"block": BLOCK, "confidence": 0.8}
    values.update(kwargs)
    return Retrieved(**values)  # type: ignore[arg-type]


def test_a_confident_knowledge_question_gets_the_passage_without_the_llm() -> None:
    plan = plan_reply("Are you open on Sundays?", 0.9, _retrieved(), POLICY)
    assert plan.source is ReplySource.KNOWLEDGE
    assert plan.text == "We are closed on Sunday and on public holidays."


def test_the_llm_strategy_or_a_weak_match_goes_to_the_llm() -> None:
    llm_policy = ReplyPolicy(min_confidence=0.25, extractive=False)
    assert plan_reply("Are you open on Sundays?", 0.9, _retrieved(), llm_policy).source is (
        ReplySource.LLM
    )
    weak = _retrieved(confidence=0.4)  # above the minimum, below confident_at
    plan = plan_reply("Tell me about your dentists", 0.9, weak, POLICY)
    assert (plan.source, plan.text) == (ReplySource.LLM, "")
    # ... unless a passage matches it well (two content words, a weekday counting double).
    plan = plan_reply("Are you open on Sundays?", 0.9, weak, POLICY)
    assert plan.source is ReplySource.KNOWLEDGE


def test_out_of_domain_by_confidence_or_by_example_is_deflected() -> None:
    low = _retrieved(confidence=0.0, block="")
    plan = plan_reply("Who won the football world cup in 1966?", 0.9, low, POLICY)
    assert (plan.intent, plan.source, plan.text) == (
        Intent.OUT_OF_DOMAIN,
        ReplySource.DEFLECTION,
        POLICY.deflection,
    )
    by_example = _retrieved(confidence=0.3, intent="out_of_domain", intent_score=0.8)
    assert plan_reply("Tell me a joke", 0.9, by_example, POLICY).source is ReplySource.DEFLECTION
    # A confident knowledge match wins over a similar-sounding out-of-domain example.
    close = _retrieved(confidence=0.9, intent="out_of_domain", intent_score=0.7)
    assert plan_reply("Are you open on Sundays?", 0.9, close, POLICY).source is (
        ReplySource.KNOWLEDGE
    )


SORE = (
    "I had a filling done last month and since then the tooth hurts when I drink something "
    "cold, is that normal or should I come back in to have it checked?"
)
OWN_FIELD = "I can't judge that over the phone, but one of our dentists can take a look."


def test_a_question_of_the_agents_own_field_the_knowledge_lacks_gets_the_in_domain_reply() -> None:
    """bench-voice-long deflected a patient's sore tooth (retrieval confidence below the line)."""
    policy = replace(POLICY, in_domain=OWN_FIELD)
    for confidence in (0.0, 0.3):  # below the agent's minimum, or in domain but not confident
        sore = _retrieved(confidence=confidence, intent="in_domain", intent_score=0.79)
        plan = plan_reply(SORE, 0.9, sore, policy)
        assert (plan.intent, plan.source, plan.text) == (
            Intent.QUESTION,
            ReplySource.IN_DOMAIN,
            OWN_FIELD,
        )
    # without in-domain examples in the spec: deflected, as before
    low = _retrieved(confidence=0.0, intent="in_domain", intent_score=0.79)
    assert plan_reply(SORE, 0.9, low, POLICY).source is ReplySource.DEFLECTION


def test_the_in_domain_reply_needs_a_close_example_and_gives_way_to_confident_knowledge() -> None:
    policy = replace(POLICY, in_domain=OWN_FIELD)
    # near miss: shares "drink something cold" with an example, closest only by a hair (0.51)
    near = _retrieved(confidence=0.0, block="", intent="in_domain", intent_score=0.51)
    question = "Can you recommend a good place nearby to drink something cold?"
    assert plan_reply(question, 0.9, near, policy).source is ReplySource.DEFLECTION
    # the knowledge answers it confidently: the knowledge's answer, not the in-domain reply
    known = _retrieved(confidence=0.9, intent="in_domain", intent_score=0.7)
    assert plan_reply("Are you open on Sundays?", 0.9, known, policy).source is (
        ReplySource.KNOWLEDGE
    )
    # the caller's records or an account number: the LLM and its tools, as for any question
    live = _retrieved(confidence=0.3, intent="in_domain", intent_score=0.8, live_data=True)
    assert plan_reply(SORE, 0.9, live, policy).source is ReplySource.LLM


def test_goodbye_hangs_up_and_small_talk_gets_its_reply() -> None:
    bye = _retrieved(confidence=0.1, intent="goodbye", intent_score=0.8)
    plan = plan_reply("Thanks, that is all, goodbye", 0.9, bye, POLICY)
    assert (plan.source, plan.text, plan.hang_up) == (ReplySource.GOODBYE, POLICY.goodbye, True)
    thanks = _retrieved(confidence=0.1, intent="goodbye", intent_score=0.68)
    plan = plan_reply("Thank you so much for your help", 0.9, thanks, POLICY)
    assert (plan.source, plan.text, plan.hang_up) == (
        ReplySource.GOODBYE,
        POLICY.anything_else,
        False,
    )
    # ... unless the caller said goodbye outright.
    bye = plan_reply("Great, that's all I needed. Bye.", 0.9, thanks, POLICY)
    assert (bye.text, bye.hang_up) == (POLICY.goodbye, True)
    unsure = _retrieved(confidence=0.1, intent="goodbye", intent_score=0.5)
    plan = plan_reply("Good, thanks", 0.9, unsure, POLICY)  # no goodbye, nothing to answer
    assert (plan.source, plan.text, plan.hang_up) == (
        ReplySource.SMALL_TALK,
        POLICY.anything_else,
        False,
    )
    chat = _retrieved(confidence=0.1, intent="small_talk", intent_score=0.7)
    plan = plan_reply("How are you?", 0.9, chat, POLICY)
    assert (plan.source, plan.hang_up) == (ReplySource.SMALL_TALK, False)


def test_an_unsure_transcript_is_asked_again() -> None:
    plan = plan_reply("set or day", 0.2, _retrieved(), POLICY)
    assert (plan.intent, plan.source, plan.text) == (
        Intent.UNCLEAR,
        ReplySource.REPEAT,
        POLICY.repeat,
    )


def test_an_entity_or_live_data_always_reaches_the_llm_and_its_tools() -> None:
    low = _retrieved(confidence=0.0, block="")
    assert plan_reply("It is four eight three, nine two oh", 0.9, low, POLICY).source is (
        ReplySource.LLM
    )
    assert plan_reply("483920", 0.9, low, POLICY).source is ReplySource.LLM
    live = _retrieved(live_data=True)
    assert plan_reply("When is my appointment?", 0.9, live, POLICY).source is ReplySource.LLM


def test_a_cache_hit_is_spoken_as_stored() -> None:
    hit = _retrieved(cached_answer="We are closed on Sunday.", confidence=0.95)
    plan = plan_reply("Are you open Sundays?", 0.9, hit, POLICY)
    assert (plan.source, plan.text) == (ReplySource.CACHE, "We are closed on Sunday.")


def test_a_low_scored_question_that_a_passage_answers_is_not_deflected() -> None:
    """Retrieval confidence is one cosine; "Is there parking?" can score like an off-topic
    question. Two shared content words rescue it; an off-topic question shares none."""
    low = _retrieved(confidence=0.1)
    plan = plan_reply("Is there free parking at the practice?", 0.9, low, POLICY)
    assert plan.source is ReplySource.KNOWLEDGE
    assert plan.text.startswith("Free parking is behind the building")
    off = plan_reply("What is the capital of France?", 0.9, low, POLICY)
    assert off.source is ReplySource.DEFLECTION


# The context block as the context service sends it (no headings): the full eval of 2026-12-04
# answered "Are you open on Sunday?" with the weekday hours and "What time do you close on
# Friday?" with the Sunday closure (the open/close contrast skipped the sentence that answers).
PLAIN = """[1] Acme Dental is open Monday to Friday from 8 am to 6 pm, and on Saturday from
9 am to 1 pm. We are closed on Sunday and on public holidays.
[2] For a dental emergency outside opening hours, call our main number and press 9."""


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Are you open on Sunday?", "We are closed on Sunday"),
        ("Are you open on public holidays?", "We are closed on Sunday"),
        ("This is annoying. What time do you close on Friday?", "Acme Dental is open Monday"),
        ("When do you close on Saturday?", "Acme Dental is open Monday"),
    ],
)
def test_open_and_closed_answer_each_other(question: str, answer: str) -> None:
    assert best_passage(question, PLAIN).text.startswith(answer)


VOLT = """[1] For a power cut, call the outage line at 1-800-555-0142. The outage line is open
24 hours a day, 7 days a week, and tells you when power is expected back.
[2] The Volt Energy support line is open Monday to Friday from 8 am to 8 pm, and on Saturday from
9 am to 5 pm. It is closed on Sunday and on public holidays."""


def test_during_the_week_and_a_sentence_that_says_it_are_read_as_the_eval_asked() -> None:
    """The full eval answered both with the outage line: "during the week" named no weekday, and
    "It is closed on Sunday" did not say what "it" was."""
    week = best_passage("What are your support line hours during the week?", VOLT).text
    assert week.startswith("The Volt Energy support line is open Monday to Friday")
    sunday = best_passage("Can I call the support line on a Sunday?", VOLT).text
    assert sunday.startswith("The Volt Energy support line is open")  # what "it" is
    assert sunday.endswith("It is closed on Sunday and on public holidays.")
    night = best_passage("Is the outage line open at night?", VOLT).text
    assert night.startswith("The outage line is open 24 hours a day")


TARIFFS_BLOCK = """[1] Leaving Volt Fixed 12 before its 12 months are over costs an exit fee of 75
dollars per fuel. There is no exit fee in the last 49 days of the fixed term. Leaving Volt Flex
is free at any time.
[2] Volt Flex is our variable tariff. Electricity currently costs 22 cents per kilowatt hour."""


def test_the_side_the_question_takes_is_its_point() -> None:
    """The full eval answered "Do I have to pay anything to leave the variable tariff?" with
    what the variable tariff is (two words shared) rather than that leaving it is free."""
    for question in (
        "Do I have to pay anything to leave the variable tariff?",
        "Is there a fee to leave the variable tariff?",
    ):
        said = best_passage(question, TARIFFS_BLOCK).text
        assert said == "Leaving Volt Flex is free at any time."
    fixed = best_passage("Is there a fee to leave the fixed tariff early?", TARIFFS_BLOCK).text
    assert fixed.startswith("Leaving Volt Fixed 12 before its 12 months")


def test_stems_and_weekday_ranges_meet_the_question() -> None:
    assert best_passage("Are you closed on Sundays?", BLOCK).text.startswith("We are closed")
    thursday = best_passage("Can I come in on a Thursday?", BLOCK).text
    assert thursday.startswith("Acme Dental is open Monday to Friday")


def test_a_goodbye_after_an_account_lookup_still_ends_the_call() -> None:
    """Live records stay in every later block once the account is known: they send questions
    to the LLM, never a goodbye or an off-topic question."""
    after_lookup = _retrieved(live_data=True, confidence=0.2, intent="goodbye", intent_score=0.8)
    plan = plan_reply("Great. Thank you. Goodbye.", 0.9, after_lookup, POLICY)
    assert (plan.source, plan.hang_up) == (ReplySource.GOODBYE, True)
    off = _retrieved(live_data=True, confidence=0.1, intent="out_of_domain", intent_score=0.8)
    assert plan_reply("Who won the cup?", 0.9, off, POLICY).source is ReplySource.DEFLECTION


def test_an_acknowledgement_gets_anything_else_not_the_llm() -> None:
    """After an account lookup every block carries live records; "Thank you." still has
    nothing for the LLM to answer (it rambled in the e2e call)."""
    live = _retrieved(live_data=True, confidence=0.0, intent="small_talk", intent_score=0.44)
    plan = plan_reply("Thank you.", 0.9, live, POLICY)
    assert (plan.source, plan.text, plan.hang_up) == (
        ReplySource.SMALL_TALK,
        POLICY.anything_else,
        False,
    )
    assert plan_reply("Okay, great.", 0.9, live, POLICY).source is ReplySource.SMALL_TALK
    hello = plan_reply("Hello?", 0.9, live, POLICY)  # no thanks: the small-talk reply
    assert (hello.source, hello.text) == (ReplySource.SMALL_TALK, POLICY.small_talk)
    assert plan_reply("Thank you, when is my appointment?", 0.9, live, POLICY).source is (
        ReplySource.LLM
    )
