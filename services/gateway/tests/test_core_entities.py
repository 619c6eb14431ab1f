"""Call-state entities from the caller's words (for the context service's live sources)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.gateway.core.entities import (
    entity_names,
    extract_entities,
    spoken_number,
    subject,
)
from trunkline.gateway.profile import load_profiles

pytestmark = pytest.mark.unit

NAMES = ("account_id",)


def test_names_come_from_the_live_source_templates() -> None:
    templates = ["/accounts/{account_id}/appointments", "/x/{account_id}/{claim_no}", ""]
    assert entity_names(templates) == ("account_id", "claim_no")
    assert subject("account_id") == "account"
    assert subject("claim_no") == "claim"
    assert subject("policy_holder") == "policy holder"


@pytest.mark.parametrize(
    "text",
    [
        "Can you look up my account please? The number is four four one seven two nine.",
        "My account number is 441729.",
        "Account 4-4-1-7-2-9, please.",
        "my account is 44 17 29",
        "It's account four four one, seven two nine.",
        "Can you look up my count please? The number is 441-729.",  # misheard subject
    ],
)
def test_an_account_number_in_figures_or_words(text: str) -> None:
    assert extract_entities(text, NAMES) == {"account_id": "441729"}


@pytest.mark.parametrize(
    "text",
    [
        "Call me back on 4417293.",  # no subject
        "Can you look up my account please?",  # no number
        "My account, it's from 2019.",  # too short
    ],
)
def test_nothing_without_both_subject_and_a_long_enough_number(text: str) -> None:
    assert extract_entities(text, NAMES) == {}


def test_number_alone_is_no_cue_when_several_entities_are_sought() -> None:
    text = "The number is four four one seven two nine."
    assert extract_entities(text, ("account_id", "claim_no")) == {}
    assert extract_entities("claim 77812", ("account_id", "claim_no")) == {"claim_no": "77812"}


def test_the_longest_digit_run_wins() -> None:
    assert spoken_number("call me at 5 on account 123456") == "123456"
    assert spoken_number("one two three") is None


def test_the_sample_agent_needs_the_account_number() -> None:
    sample = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"
    profile = load_profiles(sample)["acme-dental"]
    assert profile.retrieval.entity_names == ("account_id",)
    lookup = next(t for t in profile.tools if t.name == "lookup_account")
    assert (lookup.risk, lookup.timeout_s) == ("low", 2.0)
    assert lookup.endpoint.endswith("/tools/lookup_account")


@pytest.mark.parametrize(
    "said",
    [
        "My card number is 4539. 1488033436467.",  # as Whisper wrote it on the local stack
        "my card number is four five three nine one four eight eight zero three four three "
        "six four six seven",
        "the number is 4111 1111 1111 1111",
        "My card number is 4539. 1488",  # a partial transcript, read ahead: the first groups
    ],
)
def test_a_card_number_is_never_an_entity(said: str) -> None:
    """It would go to the live source's system in a URL (issue 13)."""
    assert extract_entities(said, ["account_id"]) == {}
    assert extract_entities("my account number is 441729", ["account_id"]) == {
        "account_id": "441729"
    }
