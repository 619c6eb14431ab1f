"""Digit sequences as a caller says them or STT writes them, with their place in the text.

``4111 1111 1111 1111``, ``(555) 123-4567``, ``four one one one, one one one one``,
``five five five twelve thirty four`` and ``double two`` are all digit runs: the digits, the
character span they cover, and how they were written (a leading ``+``, formatting punctuation,
spoken words). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
TEENS = {
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
}
TENS = {
    "twenty": "2",
    "thirty": "3",
    "forty": "4",
    "fifty": "5",
    "sixty": "6",
    "seventy": "7",
    "eighty": "8",
    "ninety": "9",
}
REPEATS = {"double": 2, "triple": 3}
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred"}

# An identifier is one opaque token, never digits: a UUID, or a word of 6+ letters and digits
# mixed (a call SID "CA43eb62441552aab…", a hex id), so the digits inside it are no phone.
# "14th", "10am" are shorter and still split (dates read them).
_IDENTIFIER = (
    r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}"
)
TOKEN = re.compile(rf"{_IDENTIFIER}|\d+|[A-Za-z]+(?:'[A-Za-z]+)?|[^\sA-Za-z\d]")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower()

    @property
    def is_digits(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True, slots=True)
class DigitRun:
    """Consecutive digits in the text: ``digits`` as a string, ``start``/``end`` in the text."""

    digits: str
    start: int
    end: int
    plus: bool = False  # written with a leading "+"
    formatted: bool = False  # joined by "-", ".", "(", ")" (a phone-like layout)
    spoken: bool = False  # at least one digit came from a word
    groups: tuple[int, ...] = ()  # digits per written/spoken group, in order


def tokens(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def _value(text: str, toks: list[Token], i: int, in_run: bool) -> tuple[str, int] | None:
    """The digits token ``i`` (and maybe the next) stands for, and how many tokens it used."""
    tok = toks[i]
    if tok.is_digits:
        return tok.text, 1
    word = tok.lower
    nxt = ""
    if i + 1 < len(toks) and text[tok.end : toks[i + 1].start].strip(" -") == "":
        nxt = toks[i + 1].lower
    if word in REPEATS and nxt in UNITS:
        return UNITS[nxt] * REPEATS[word], 2
    if word == "oh" and not in_run and nxt not in NUMBER_WORDS and not nxt.isdigit():
        return None  # "oh," opening a sentence is no zero
    if word in UNITS:
        if nxt == "hundred":
            return UNITS[word] + "00", 2
        return UNITS[word], 1
    if word in TEENS:
        return TEENS[word], 1
    if word in TENS:
        hyphen = i + 2 < len(toks) and toks[i + 1].text == "-" and tok.end == toks[i + 1].start
        if hyphen and toks[i + 2].lower in UNITS and toks[i + 1].end == toks[i + 2].start:
            return TENS[word] + UNITS[toks[i + 2].lower], 3
        if nxt in UNITS and nxt not in ("oh", "zero"):
            return TENS[word] + UNITS[nxt], 2
        return TENS[word] + "0", 1
    return None


def digit_runs(text: str, skip: list[tuple[int, int]] | None = None) -> list[DigitRun]:
    """Every run of digits in ``text``, written or spoken, outside the ``skip`` spans."""
    toks = [t for t in tokens(text) if not _inside(t, skip or [])]
    runs: list[DigitRun] = []
    i = 0
    while i < len(toks):
        run = _run_at(text, toks, i)
        if run is None:
            i += 1
            continue
        found, i = run
        runs.append(found)
    return runs


def _inside(tok: Token, spans: list[tuple[int, int]]) -> bool:
    return any(start <= tok.start and tok.end <= end for start, end in spans)


def _run_at(text: str, toks: list[Token], i: int) -> tuple[DigitRun, int] | None:
    plus = False
    start_i = i
    if toks[i].text in ("+", "(") and i + 1 < len(toks) and toks[i + 1].is_digits:
        plus = toks[i].text == "+"
        i += 1
    first = _value(text, toks, i, in_run=False)
    if first is None:
        return None
    digits, used = first
    groups = [len(digits)]
    spoken = not toks[i].is_digits
    formatted = toks[start_i].text == "("
    last = i + used - 1
    j = i + used
    while j < len(toks):
        prev = toks[last]
        tok = toks[j]
        if text[prev.end : tok.start].strip():
            break
        sep = None
        if tok.text in ("-", ".", ")", ",", "/") and j + 1 < len(toks):
            sep, nxt_i = tok.text, j + 1
            if text[tok.end : toks[nxt_i].start].strip():
                break
        else:
            nxt_i = j
        nxt = toks[nxt_i]
        if sep == "/":
            break  # a date or a fraction, never one number
        if sep == "," and (prev.is_digits or nxt.is_digits):
            break  # "1,250" is a quantity; commas only join spoken digits
        if sep == "." and not (
            prev.is_digits and nxt.is_digits and len(prev.text) >= 3 and len(nxt.text) >= 3
        ):
            break  # "12.50" is a price
        if sep == ")" and not formatted:
            break
        value = _value(text, toks, nxt_i, in_run=True)
        if value is None:
            break
        part, used = value
        digits += part
        groups.append(len(part))
        spoken = spoken or not nxt.is_digits
        formatted = formatted or sep in ("-", ".", ")")
        last = nxt_i + used - 1
        j = nxt_i + used
    begin = toks[start_i].start
    return (
        DigitRun(
            digits=digits,
            start=begin,
            end=toks[last].end,
            plus=plus,
            formatted=formatted,
            spoken=spoken,
            groups=tuple(groups),
        ),
        j,
    )


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number holds."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0
