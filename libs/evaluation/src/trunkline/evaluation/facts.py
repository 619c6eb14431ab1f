"""The eval's own grounding check: which facts a spoken clause states, and whether the agent's
sources state them too. Pure.

It is deliberately independent of the gateway's grounding guard (another normaliser, another
fact extractor, sources read from the files rather than from the turn's context block): the
eval's faithfulness figure is a second opinion, not the guard grading itself.

Checkable facts are numbers, clock times, weekdays, months and proper names (capitalised words
inside a clause). A source supports a fact when it states the same normalised fact; a weekday
range ("Monday to Friday") states every day in it, a time states its hour as a bare number
("open until 6" is supported by "6 pm"). A spelled-out "one" and ordinals outside dates ("a
second") are not counted as facts: they are rarely claims.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from trunkline.evaluation.normalize import MONTHS, WEEKDAYS, Token, tokens

FactKind = Literal["number", "time", "weekday", "month", "name"]

_CLAUSE_BREAK = re.compile(r"(?<=[.!?;,:])(?<![aApP]\.[mM]\.)(?<!(?:Dr|St|Mr|Ms)\.)(?<!Mrs\.)\s+")
_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z]+(?:'[a-z]+)?\b")
_NOT_NAMES = frozenset({
    "i", "i'm", "i'll", "i've", "i'd", "okay", "ok", "mr", "mrs", "ms", "dr", "sorry", "yes",
    "no", "hi", "hello", "please", "thanks", "thank", "goodbye", "bye", "am", "pm",
})  # fmt: skip
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'"})


@dataclass(frozen=True, slots=True)
class Fact:
    kind: FactKind
    value: str
    meridiem: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}{self.meridiem}"


def clauses(text: str) -> list[str]:
    """The text cut at , . ! ? ; : (not inside "a.m." or after "Dr."), blanks dropped."""
    return [c.strip() for c in _CLAUSE_BREAK.split(text) if c.strip(" .,;:!?")]


def sentence_starts(text: str) -> list[bool]:
    """For each of ``clauses(text)``: does it begin a sentence (the first clause, or after . ! ?
    or : as a list item or heading does)."""
    out, previous = [], "."
    for clause in clauses(text):
        out.append(previous.rstrip("*_ ")[-1:] in (".", "!", "?", ":"))
        previous = clause.rstrip()
    return out


def _names(clause: str, sentence_start: bool) -> list[str]:
    clause = clause.translate(_APOSTROPHES)
    words = _CAPITALISED.findall(clause)
    first = re.match(r"[\W\d_]*([A-Za-z][\w']*)", clause)  # past "2. **" of a list item
    if sentence_start and first is not None and words and words[0] == first.group(1):
        words = words[1:]  # a sentence's first word is capitalised anyway
    out = []
    for word in words:
        low = re.sub(r"'s$", "", word.lower())
        if low in _NOT_NAMES or low in WEEKDAYS or low.rstrip("s") in WEEKDAYS or low in MONTHS:
            continue
        out.append(low)
    return out


def _facts(items: Sequence[Token]) -> list[Fact]:
    out: list[Fact] = []
    for i, t in enumerate(items):
        if t.kind == "time":
            out.append(Fact("time", t.text, t.meridiem))
        elif t.kind == "number":
            after_month = i > 0 and items[i - 1].kind == "word" and items[i - 1].text in MONTHS
            if t.spoken and t.text == "1" and not t.ordinal:
                continue
            if t.ordinal and t.spoken and not after_month:
                continue
            out.append(Fact("number", t.text))
        elif t.kind == "word" and t.text in WEEKDAYS:
            out.append(Fact("weekday", t.text))
        elif t.kind == "word" and t.text in MONTHS:
            out.append(Fact("month", t.text))
    return out


def checkable_facts(clause: str, sentence_start: bool = True) -> list[Fact]:
    """The facts a clause states, in order, without repeats (``sentence_start``: its first
    word is capitalised as a sentence's, not as a name)."""
    found = _facts(tokens(clause)) + [Fact("name", n) for n in _names(clause, sentence_start)]
    return list(dict.fromkeys(found))


def _weekday_ranges(items: Sequence[Token]) -> set[str]:
    days: set[str] = set()
    words = [t.text if t.kind == "word" else "" for t in items]
    for i, w in enumerate(words):
        if w in ("weekday", "weekdays"):
            days.update(WEEKDAYS[:5])
        elif w in ("weekend", "weekends"):
            days.update(WEEKDAYS[5:])
        elif w == "days" and i > 0 and items[i - 1].text == "7":
            days.update(WEEKDAYS)
        elif w in WEEKDAYS and i + 2 < len(words) and words[i + 1] == "to":
            end = words[i + 2]
            if end in WEEKDAYS:
                a, b = WEEKDAYS.index(w), WEEKDAYS.index(end)
                days.update(WEEKDAYS[(a + k) % 7] for k in range((b - a) % 7 + 1))
    return days


class FactBase:
    """Everything the sources state, normalised: numbers, times, weekdays, months, words."""

    def __init__(self) -> None:
        self.numbers: set[str] = set()
        self.times: set[tuple[str, str]] = set()
        self.weekdays: set[str] = set()
        self.months: set[str] = set()
        self.words: set[str] = set()

    @classmethod
    def of(cls, texts: Iterable[str]) -> FactBase:
        base = cls()
        for text in texts:
            base.add(text)
        return base

    def add(self, text: str) -> None:
        items = tokens(text)
        for t in items:
            if t.kind == "number":
                self.numbers.add(t.text)
            elif t.kind == "time":
                self.times.add((t.text, t.meridiem))
                hour, minute = t.text.split(":")
                self.numbers.add(hour)
                if t.meridiem == "pm" and hour != "12":
                    self.numbers.add(str(int(hour) + 12))
                if minute != "00":
                    self.numbers.add(str(int(minute)))
            elif t.text in WEEKDAYS:
                self.weekdays.add(t.text)
            elif t.text in MONTHS:
                self.months.add(t.text)
            if t.kind == "word":
                self.words.add(t.text)
        self.weekdays |= _weekday_ranges(items)
        self.words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))

    def add_echo(self, text: str) -> None:
        """What the agent may repeat of the caller's words: long numbers (an account number, a
        year) and names, not weekdays, times or small numbers ("are you open on Sunday?" does
        not make "we are open on Sunday" true)."""
        for t in tokens(text):
            if t.kind == "number" and len(t.text.replace(".", "")) >= 3:
                self.numbers.add(t.text)
        self.words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))

    def merged(self, texts: Iterable[str], echoes: Iterable[str] = ()) -> FactBase:
        """A copy with ``texts`` added as sources and ``echoes`` as the caller's words."""
        out = FactBase()
        out.numbers, out.times = set(self.numbers), set(self.times)
        out.weekdays, out.months, out.words = set(self.weekdays), set(self.months), set(self.words)
        for text in texts:
            out.add(text)
        for text in echoes:
            out.add_echo(text)
        return out

    def supports(self, fact: Fact) -> bool:
        if fact.kind == "number":
            return fact.value in self.numbers
        if fact.kind == "time":
            return any(
                value == fact.value and (not m or not fact.meridiem or m == fact.meridiem)
                for value, m in self.times
            )
        if fact.kind == "weekday":
            return fact.value in self.weekdays
        if fact.kind == "month":
            return fact.value in self.months
        return fact.value in self.words

    def unsupported(self, facts: Iterable[Fact]) -> list[Fact]:
        return [f for f in facts if not self.supports(f)]
