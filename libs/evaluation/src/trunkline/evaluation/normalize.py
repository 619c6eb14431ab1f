"""Text as comparable tokens: "9 am" = "nine a.m." = "9:00 AM", "$95" = "95 dollars". Pure.

The eval compares what a scenario expects with what the agent said and what STT heard, written
by three different hands (a person, an LLM, Whisper). :func:`tokens` brings them to one form:

- lower case, contractions expanded ("we're" -> "we are"), weekdays singular ("Mondays");
- numbers as digits whether written "95", "ninety-five" or "ninety five"; ordinals ("8th",
  "eighth") as numbers; a run of three or more single digits ("four four one, seven two nine",
  "441-729") as one digit string ("441729");
- clock times as ``h:mm`` with am/pm when given ("nine thirty p.m.", "21:30", "9.30pm" is not
  parsed), "noon", "midnight", "9 o'clock", "9 in the morning";
- money as a number followed by its unit word ("$1.50" -> "1.5 dollars"), "kilowatt hours" as
  "kwh", "%" as "percent"; "till/until/through" as "to".

:func:`phrase_in` says whether an expected phrase occurs in a text (its content words in order,
at most a few other words between them); :func:`wer_words` gives the words WER is counted on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from trunkline.text import MONTHS, ORDINALS, WEEKDAYS, read_number

__all__ = ["MONTHS", "WEEKDAYS", "Token", "contains", "phrase_in", "same", "tokens", "wer_words"]

_CONTRACTIONS = (
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'d\b"), " would"),
)
_SYNONYMS = {
    "till": "to", "until": "to", "through": "to", "thru": "to", "dollar": "dollars",
    "cent": "cents", "euro": "euros", "pound": "pounds", "ok": "okay", "mr": "mister",
    "dr": "doctor", "st": "street", "ave": "avenue",
}  # fmt: skip
_MORNING = {"morning": "am", "afternoon": "pm", "evening": "pm", "night": "pm"}
_STOPWORDS = frozenset({
    "the", "a", "an", "on", "at", "in", "of", "is", "are", "it", "its", "we", "our", "and",
    "for", "per", "from", "by", "with", "that", "this", "be",
})  # fmt: skip

_PRE = (
    (re.compile("[\u2018\u2019`]"), "'"),
    (re.compile(r"\b([ap])\.\s?m\b\.?"), r" \1m "),
    (re.compile(r"(\d)\s*([ap]m)\b"), r"\1 \2"),
    (re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)"), r" \1 dollars "),
    (re.compile(r"€\s?(\d[\d,]*(?:\.\d+)?)"), r" \1 euros "),
    (re.compile(r"£\s?(\d[\d,]*(?:\.\d+)?)"), r" \1 pounds "),
    (re.compile(r"(\d)\s?¢"), r"\1 cents"),
    (re.compile(r"(\d)\s?%"), r"\1 percent"),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), r"\1"),
    (re.compile(r"\bkilowatt[\s-]?hours?\b|\bkw\s?h\b|\bkw/h\b"), " kwh "),
    (re.compile(r"\bo'?\s?clock\b"), " oclock "),
    (re.compile(r"(?<=\d),(?=\d{3}\b)"), ""),
    (re.compile(r"(?<=\d)-(?=\d)"), ""),
    (re.compile("[-\u2013\u2014/]"), " "),
)
_RAW = re.compile(r"\d+(?::\d{2})?(?:\.\d+)?|[a-z]+(?:'[a-z]+)*")


@dataclass(frozen=True, slots=True)
class Token:
    """A word, a number (canonical digits: "95", "1.5", "441729") or a time ("9:30")."""

    kind: Literal["word", "number", "time"]
    text: str
    meridiem: str = ""  # times: "am", "pm" or "" (not said)
    spoken: bool = False  # numbers: written as words ("nine"), not digits
    ordinal: bool = False  # numbers: "eighth", "8th"

    @property
    def wer_text(self) -> str:
        return self.text + self.meridiem if self.kind == "time" else self.text


def _canonical(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _expand(text: str) -> list[str]:
    text = text.lower()
    for pattern, replacement in _PRE:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return _RAW.findall(text)


def _number_run(words: Sequence[str], start: int) -> tuple[int, int] | None:
    """The number spelled from ``words[start]`` on: (value, words used), or None."""
    return read_number(words, start)


def _numbers(raw: Sequence[str]) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(raw):
        w = raw[i]
        if w[0].isdigit():
            if ":" in w:
                out.append(Token("time", w))
            else:
                out.append(Token("number", _canonical(float(w))))
            i += 1
            continue
        run = _number_run(raw, i)
        if run is not None:
            value, used = run
            if i + used < len(raw) and raw[i + used] in ORDINALS and value % 10 == 0:
                value += ORDINALS[raw[i + used]]  # "twenty first"
                out.append(Token("number", str(value), spoken=True, ordinal=True))
                i += used + 1
                continue
            out.append(Token("number", str(value), spoken=True))
            i += used
            continue
        if w in ORDINALS:
            out.append(Token("number", str(ORDINALS[w]), spoken=True, ordinal=True))
        else:
            out.append(Token("word", _SYNONYMS.get(w, w)))
        i += 1
    return out


def _join_digits(items: list[Token]) -> list[Token]:
    """Three or more single digits in a row are one digit string (an account number)."""
    out: list[Token] = []
    i = 0
    while i < len(items):
        j = i
        while (
            j < len(items)
            and items[j].kind == "number"
            and len(items[j].text) == 1
            and not items[j].ordinal
        ):
            j += 1
        if j - i >= 3:
            out.append(Token("number", "".join(t.text for t in items[i:j])))
            i = j
        else:
            out.append(items[i])
            i += 1
    return out


def _clock(hour: int, minute: int, meridiem: str) -> Token:
    if hour > 12:
        hour, meridiem = hour - 12, "pm"
    elif hour == 0:
        hour, meridiem = 12, "am"
    return Token("time", f"{hour}:{minute:02d}", meridiem=meridiem)


def _meridiem_after(items: Sequence[Token], i: int) -> tuple[str, int]:
    """am/pm stated at ``items[i:]``: ("am", words used), or ("", 0)."""
    if i < len(items) and items[i].kind == "word" and items[i].text in ("am", "pm"):
        return items[i].text, 1
    ahead = items[i : i + 3]
    words = [t.text if t.kind == "word" else "" for t in ahead]
    if len(words) == 3 and words[:2] == ["in", "the"] and words[2] in _MORNING:
        return _MORNING[words[2]], 3
    if words[:2] == ["at", "night"]:
        return "pm", 2
    return "", 0


def _times(items: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(items):
        t = items[i]
        if t.kind == "word" and t.text in ("noon", "midday", "midnight"):
            out.append(Token("time", "12:00", "am" if t.text == "midnight" else "pm"))
            i += 1
            continue
        if t.kind == "time":
            hour, minute = (int(p) for p in t.text.split(":"))
            meridiem, used = _meridiem_after(items, i + 1)
            out.append(_clock(hour, minute, meridiem))
            i += 1 + used
            continue
        if t.kind == "number" and t.text.isdigit() and 0 < int(t.text) <= 12 and not t.ordinal:
            hour, minute, j = int(t.text), 0, i + 1
            nxt = items[j] if j < len(items) else None
            if (
                nxt is not None
                and nxt.kind == "number"
                and nxt.text.isdigit()
                and int(nxt.text) < 60
                and (len(nxt.text) == 2 or nxt.spoken)
            ):
                minute, j = int(nxt.text), j + 1
            meridiem, used = _meridiem_after(items, j)
            if used:
                out.append(_clock(hour, minute, meridiem))
                i = j + used
                continue
            if j == i + 1 and j < len(items) and items[j].text == "oclock":
                out.append(_clock(hour, 0, ""))
                i = j + 1
                continue
        out.append(t)
        i += 1
    return out


def _weekday(token: Token) -> Token:
    if token.kind == "word" and token.text.endswith("s") and token.text[:-1] in WEEKDAYS:
        return Token("word", token.text[:-1])
    return token


def tokens(text: str) -> list[Token]:
    """``text`` as normalised tokens (see the module docstring)."""
    items = _join_digits(_numbers(_expand(text)))
    return [_weekday(t) for t in _times(items)]


def wer_words(text: str) -> list[str]:
    """The words WER is counted on: normalised tokens as plain strings."""
    return [t.wer_text for t in tokens(text)]


def same(expected: Token, seen: Token) -> bool:
    """``seen`` states what ``expected`` states. A time without am/pm agrees with either; an
    expected bare hour ("9") is met by a time on the hour ("9 am")."""
    if expected.kind == "time" and seen.kind == "time":
        return expected.text == seen.text and (
            not expected.meridiem or not seen.meridiem or expected.meridiem == seen.meridiem
        )
    if expected.kind == "number" and seen.kind == "time":
        return seen.text == f"{expected.text}:00"
    return expected.kind == seen.kind and expected.text == seen.text


def contains(haystack: Sequence[Token], needle: Sequence[Token], max_gap: int = 3) -> bool:
    """The needle's content tokens occur in ``haystack`` in order, with at most ``max_gap``
    other tokens between two of them (stop words of the needle are not required)."""
    content = [t for t in needle if not (t.kind == "word" and t.text in _STOPWORDS)]
    wanted = content or list(needle)
    if not wanted:
        return False

    def from_(pos: int, k: int) -> bool:
        if k == len(wanted):
            return True
        end = len(haystack) if k == 0 else min(len(haystack), pos + max_gap + 1)
        return any(same(wanted[k], haystack[j]) and from_(j + 1, k + 1) for j in range(pos, end))

    return from_(0, 0)


def phrase_in(phrase: str, text: str, max_gap: int = 3) -> bool:
    """``phrase`` (e.g. "9 am", "120 Main Street") is said in ``text``."""
    return contains(tokens(text), tokens(phrase), max_gap)
