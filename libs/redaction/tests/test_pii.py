from pathlib import Path

import pytest

from trunkline.redaction import Entity, detect, redact
from trunkline.redaction.labelled import LabelledSetError, load_labelled, score
from trunkline.redaction.numbers import digit_runs, luhn_ok

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "redaction"


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert not luhn_ok("4111 1111")


def test_spoken_digits_are_one_run() -> None:
    (run,) = digit_runs("it's four one one one, double one, twenty three")
    assert run.digits == "41111123"
    assert run.spoken


def test_written_quantities_are_not_joined() -> None:
    assert [r.digits for r in digit_runs("$1,299.99 for 2 boxes")] == ["1", "299", "99", "2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is 4111 1111 1111 1111", "my card is [CARD]"),
        ("four two four two four two four two four two four two four two four two", "[CARD]"),
        ("call me on (555) 123-4567 please", "call me on [PHONE] please"),
        ("john dot smith at gmail dot com", "[EMAIL]"),
        ("I live at 42 Maple Street, Springfield", "I live at [ADDRESS]"),
        ("my date of birth is March fourth nineteen eighty five", "my date of birth is [DOB]"),
        ("my account number is 441729", "my account number is [ACCOUNT]"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "We're open 8 am to 6 pm Monday to Friday.",
        "A filling is $1,299.99.",
        "Your appointment is on March 14th 2025 at 10:30.",
        "The order number is 12345678.",
        "Appointment A-1031 is on Tuesday December 8 at 10:30 am.",
    ],
)
def test_hard_negatives_pass_unchanged(text: str) -> None:
    assert redact(text) == text


def test_a_card_failing_luhn_is_still_redacted() -> None:
    (finding,) = detect("card 4111 1111 1111 1112")  # beside its word: the card, misheard
    assert finding.entity is Entity.CARD
    (finding,) = detect("it is 4111 1111 1111 1112")  # no word: a long number, an account
    assert finding.entity is Entity.ACCOUNT


def test_labelled_set_precision_and_recall() -> None:
    items = load_labelled(DATA)
    positives = sum(len(i.gold) for i in items)
    assert positives >= 80
    assert sum(1 for i in items if not i.gold) >= 40
    report = score(items)
    for entity, result in report.per_entity.items():
        assert result.precision >= 0.9, (entity, report.misses)
        assert result.recall >= 0.9, (entity, report.misses)


def test_holdout_set_is_scored_separately() -> None:
    report = score(load_labelled(DATA / "holdout"))
    assert report.total.recall >= 0.8, report.misses
    assert report.negatives_flagged <= 1, report.misses


def test_a_value_missing_from_its_text_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        '- text: "call 555-0100"\n  entities: [{type: phone, value: "555-0199"}]\n'
    )
    with pytest.raises(LabelledSetError, match=r"bad.yaml#1: value '555-0199'"):
        load_labelled(tmp_path)


def test_facts_inside_pii_are_masked() -> None:
    from trunkline.redaction import redact_facts  # noqa: PLC0415

    clause = "the card 4111 1111 1111 1111 was declined at 9 am"
    assert redact_facts(clause, ("number:4111", "number:1111", "time:9:00")) == (
        "number:[CARD]",
        "number:[CARD]",
        "time:9:00",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # speech-to-text writes digits read out in groups with a comma and a space
        ("My card number is 4111, 1111, 1111, 1111.", "My card number is [CARD]."),
        ("card 4111, 1111, 1111, 1112, thanks", "card [CARD], thanks"),  # misheard: still a card
        ("you can call me on 415, 555, 0132", "you can call me on [PHONE]"),
        ("my account is 441, 729", "my account is [ACCOUNT]"),
        # Whisper on the local stack, a card read out digit by digit at the end
        ("My card number is 4539, 488, 0, 3, 4, 3, 6, 4, 6, 6,", "My card number is [CARD],"),
        ("it is 4, 5, 3, 9, 1, 4, 8, 8, 0", "it is [ACCOUNT]"),
        # Whisper on an AVX-512 machine: one period, then groups split by spaces alone (the
        # first two groups had read as a phone number beside "number is")
        ("My card number is 4539. 1488 033 433 6 467", "My card number is [CARD]"),
        ("The card number is 4539, 1488 0343 6467.", "The card number is [CARD]."),
        # Whisper in a CI run: dashed groups (alone they read as a phone number beside "number
        # is"), then the last group cut short; one card, whatever the separators
        ("My card number is 4539-1488-0343, 6-4-6-", "My card number is [CARD]-"),
        ("My card number is 4539 1488 0343, 6-4-6-7.", "My card number is [CARD]."),
        ("my visa is 4539/1488/0343/6467", "my visa is [CARD]"),
    ],
)
def test_comma_grouped_digits_as_speech_to_text_writes_them(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "We were open in 2019, 2020 and 2021.",
        "I have 2019, 2020, 2021, 2022 records",
        "Rooms 101, 102, 103 are free.",
        "It is 12, 13, 14, 15 dollars.",
        "Press 1, 2, 3 or 4.",
        "The total comes to 1,250,000 dollars.",
        "Open 9 to 5, 7 days a week.",
        "We have 2 3 4, 5 and 6 bedroom flats.",
        # a card word, but groups too few digits for a card
        "My debit card paid 45.50, 12.99 and 130.25 this week.",
        "The credit was 12-50, 30 and 1,250.00.",
    ],
)
def test_comma_separated_numbers_without_a_reason_stay(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        # ids in log lines: their digits are no phone or account (a stack log read
        # "call CA43eb[PHONE]aab60ac…": the call SID mangled)
        "call CA43eb62441552aab60ac2a80f1e4c2240 turn 10 failed",
        "event a1b2c3d4-4155-5501-3200-000000000001 stored",
        "span 626049c09578f591 of trace ee4c27327bd593efd3f03b4e9706fb39",
    ],
)
def test_identifiers_keep_their_digits(text: str) -> None:
    assert redact(text) == text


def test_a_card_number_misheard_beside_its_word_is_still_a_card() -> None:
    # what Whisper tiny.en wrote for "four five three nine, one four eight eight, zero three
    # four three, six four six seven" read by Piper on the local stack (a digit lost: no Luhn)
    assert redact("My card number is 4539. 1488033436467.") == "My card number is [CARD]."
    assert redact("My account number is 1488033436467.") == "My account number is [ACCOUNT]."
