"""Call-state entities from what the caller said, for the context service's live sources.

A live source's path names the entities it needs (``/accounts/{account_id}/appointments``). When
the caller mentions the entity's subject ("account" for ``account_id``; or just "number" when
it is the only entity sought, as speech recognition may mishear the subject) together with a
number of at least ``min_digits`` (5) digits, spoken as figures or as words ("four four one
seven two nine"), that number is the entity's value. Values stay for the rest of the call; a later
mention replaces them. Deliberately simple and predictable: no model involved. A payment card
number is never an entity's value (issue 13): it would leave for the live source's system, in a
URL, for anyone's access log ("my card number is …" names a "number").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from trunkline.redaction import Entity, detect
from trunkline.redaction.numbers import digit_runs

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_FILLERS = {"and", "dash", "hyphen"}  # may sit inside a spoken number without ending it
_SUFFIXES = ("_id", "_number", "_no", "_code")
_CARD_WORD = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|credit|debit)\b")


def entity_names(templates: Iterable[str]) -> tuple[str, ...]:
    """The placeholders of the given URL templates, in order, each once."""
    names: list[str] = []
    for template in templates:
        names += [n for n in _PLACEHOLDER.findall(template) if n not in names]
    return tuple(names)


def subject(name: str) -> str:
    """``account_id`` -> ``account``: the word a caller uses for the entity."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("_", " ")


def spoken_number(text: str, min_digits: int = 5) -> str | None:
    """The longest run of digits in ``text`` (figures or digit words), if long enough."""
    best = ""
    run = ""
    for token in _TOKEN.findall(text.lower()):
        digits = token if token.isdigit() else _DIGIT_WORDS.get(token)
        if digits is not None:
            run += digits
            continue
        if token in _FILLERS and run:
            continue
        best = max(best, run, key=len)
        run = ""
    best = max(best, run, key=len)
    return best if len(best) >= min_digits else None


def extract_entities(text: str, names: Iterable[str], min_digits: int = 5) -> dict[str, str]:
    """Entities named in ``names`` that ``text`` gives a value for."""
    lowered = " ".join(_TOKEN.findall(text.lower()))
    wanted = list(names)
    found: dict[str, str] = {}
    for name in wanted:
        cues = [subject(name), *(["number"] if len(wanted) == 1 else [])]
        if not any(re.search(rf"\b{re.escape(cue)}", lowered) for cue in cues):
            continue
        number = spoken_number(text, min_digits)
        if number is not None and not card_number(text, number):
            found[name] = number
    return found


def card_number(text: str, number: str) -> bool:
    """Whether ``number`` is (part of) a payment card number the caller gave in ``text``: a
    card by its length and checksum, or digits said right after a card word (a partial
    transcript read ahead holds only the card's first groups)."""
    for finding in detect(text):
        if finding.entity is Entity.CARD:
            digits = "".join(run.digits for run in digit_runs(finding.text(text)))
            if number in digits or digits in number:
                return True
    return any(
        (number in run.digits or run.digits in number)
        and _CARD_WORD.search(text[max(0, run.start - 40) : run.start]) is not None
        for run in digit_runs(text)
    )
