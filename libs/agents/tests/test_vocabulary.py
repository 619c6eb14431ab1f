from pathlib import Path

import pytest

from trunkline.agents import AgentSpecError, load_agent_spec, parse_agent_spec
from trunkline.agents.vocabulary import (
    WEEKDAYS,
    agent_vocabulary,
    heading_terms,
    name_terms,
    text_terms,
)

pytestmark = pytest.mark.unit

AGENTS = Path(__file__).resolve().parents[3] / "agents"

SPEC = """
name: volt-energy
version: "1"
system_prompt: |
  You are Nora at Volt Energy. Leaving Volt Flex is free; before leaving Volt Fixed 12 you pay.
  Open Monday to Friday.
greeting: Thanks for calling Volt Energy.
"""


def knowledge() -> list[str]:
    return [p.read_text() for p in sorted((AGENTS / "acme-dental" / "knowledge").rglob("*.md"))]


def test_the_sample_agent_listens_for_its_name_days_and_services() -> None:
    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    words = agent_vocabulary(spec, knowledge())
    assert words[0] == "Acme Dental"
    assert words[1:8] == WEEKDAYS
    for term in ("Ava", "Main Street", "Springfield", "Teeth whitening", "Emergency visit"):
        assert term in words
    assert "checkup" in words  # a tool parameter's enum value
    assert not any(t.lower() in {"opening", "services", "speak", "if"} for t in words)


def test_knowledge_adds_terms_the_prompt_does_not_have() -> None:
    spec = load_agent_spec(AGENTS / "acme-dental.yaml")
    assert "Teeth whitening" not in agent_vocabulary(spec)
    assert "Teeth whitening" in agent_vocabulary(spec, knowledge())


def test_the_specs_own_words_come_first_and_the_list_is_capped() -> None:
    stt = "stt:\n  vocabulary: [Warm Home Discount, nora]\n  max_terms: 5\n"
    spec = parse_agent_spec(SPEC + stt)
    assert agent_vocabulary(spec) == (
        "Warm Home Discount",
        "nora",  # the same word later ("Nora") is not repeated
        "Volt Energy",
        "Monday",
        "Tuesday",
    )


def test_without_derivation_only_the_specs_words_are_used() -> None:
    spec = parse_agent_spec(SPEC + "stt:\n  vocabulary: [Volt Flex]\n  derive_vocabulary: false\n")
    assert agent_vocabulary(spec) == ("Volt Flex",)


def test_a_sentence_opening_word_written_lower_case_elsewhere_is_not_part_of_a_name() -> None:
    terms = agent_vocabulary(parse_agent_spec(SPEC))
    assert "Volt Flex" in terms
    assert "Volt Fixed 12" in terms
    assert not any(t.startswith("Leaving") for t in terms)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("We are at 120 Main Street, Springfield.", ["Main Street", "Springfield"]),
        ("The Volt Energy app is free.", ["Volt Energy"]),
        ("Please call Ava. Free parking is behind.", ["Ava"]),  # "Free" opens a sentence
        ("Acme Dental is open.", ["Acme Dental"]),  # a run of capitals at the start is a name
        ("Price with X-rays, said IBM.", ["X-rays", "IBM"]),
        ("Closed on Sunday and Monday.", []),  # weekdays are their own terms
    ],
)
def test_names_are_runs_of_capitalised_words(text: str, names: list[str]) -> None:
    assert name_terms(text) == names


def test_headings_that_name_things_are_terms() -> None:
    doc = "# Services and prices\n## Teeth whitening\n## When is it open?\n## Your account\n"
    doc += "## Payment, insurance and refunds\n## A very long heading here\n"
    assert heading_terms(doc) == ["Services and prices", "Teeth whitening"]


def test_a_weekday_anywhere_brings_all_seven() -> None:
    assert text_terms("open on saturdays")[:7] == list(WEEKDAYS)
    assert text_terms("open every day") == []


def test_a_bad_vocabulary_entry_is_an_error_naming_the_field() -> None:
    with pytest.raises(AgentSpecError, match=r"stt\.vocabulary: .*1\.\.100 characters"):
        parse_agent_spec(SPEC + "stt:\n  vocabulary: ['  ']\n", source="volt.yaml")
    with pytest.raises(AgentSpecError, match=r"stt\.boost"):
        parse_agent_spec(SPEC + "stt:\n  boost: -1\n")
