"""Scoring an answer (pure): are the expected facts said, is a forbidden one said, and does the
answer state a number, time or price that neither the question's expected facts nor the agent's
sources (its knowledge files and system prompt) state.

The fact check here is deliberately not the gateway's grounding guard (its own rewrites, its
own extractor, sources read from the files rather than from the turn's context block), so the
benchmark's "invented" count is a second opinion on what the guard let through. Only the
reading of spelled-out numbers is shared (``trunkline.text``): arithmetic, not judgement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchmarks.answers.questions import Question
from trunkline.text import TENS, UNITS, spelled_numbers

_NUMBER_RUN = re.compile(
    r"\b(?:(?:" + "|".join([*UNITS, *TENS, "hundred", "thousand"]) + r")(?:\s+and\s+|\s+|\b))+"
)
_REWRITES = (
    (re.compile("[\u2019\u2018`]"), "'"),
    (re.compile(r"\b([ap])\.\s?m\b\.?"), r"\1m"),
    (re.compile(r"(\d)\s*([ap]m)\b"), r"\1 \2"),
    (re.compile(r"\b(\d{1,2}) ([0-5]\d) ([ap]m)\b"), r"\1:\2 \3"),  # "twelve thirty pm"
    (re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)"), r"\1 dollars"),
    (re.compile(r"\b(?:usd|dollar)\b"), "dollars"),
    (re.compile(r"(?<=\d),(?=\d{3}\b)"), ""),
    (re.compile(r"\bo'?\s?clock\b"), ""),
    (re.compile(r"\b(\d{1,2}):00\b"), r"\1"),
    (re.compile(r"\bnoon\b|\bmidday\b"), "12 pm"),
    (re.compile(r"\bdo(?:es)?n't\b|\bdon't\b"), "do not"),
    (re.compile(r"\bcan't\b|\bcannot\b"), "can not"),
    (re.compile(r"\bwe're\b"), "we are"),
    (re.compile(r"\bit's\b"), "it is"),
    (re.compile(r"(?<!\d)\.(?!\d)|[^\w\s:.']|_"), " "),
    (re.compile(r"(?<!\d):|:(?!\d)"), " "),  # a colon stays only inside a time
)
_TIME = re.compile(r"\b(\d{1,2}(?::\d{2})?) ([ap]m)\b")
_PRICE = re.compile(r"\b(\d+(?:\.\d+)?) dollars\b")
_NUMBER = re.compile(r"(?<![\w:.])(\d+(?::\d{2})?(?:\.\d+)?)(?![\w:]|\.\d)")


def _spelled(match: re.Match[str]) -> str:
    """A run of number words as digits, read by the shared reader ("four five" is "4 5",
    "ninety five" is "95")."""
    runs = spelled_numbers(match.group(0).split())
    tail = " " if match.group(0)[-1:].isspace() else ""
    return " ".join(str(run.value) for run in runs) + tail


def normalise(text: str) -> str:
    """Lower case, numbers as digits, "9:00 a.m." as "9 am", "$95" as "95 dollars",
    punctuation as spaces, single spaces."""
    text = text.lower().replace("-", " ")
    text = _NUMBER_RUN.sub(_spelled, text)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def said(phrase: str, text: str) -> bool:
    """``phrase`` occurs in ``text`` as whole words (an added plural "s"/"es" is fine), both
    normalised."""
    wanted = normalise(phrase)
    if not wanted:
        return False
    pattern = rf"(?<![\w:]){re.escape(wanted)}(?:s|es)?(?![\w:])"
    return re.search(pattern, normalise(text)) is not None


@dataclass(frozen=True, slots=True)
class Judgement:
    correct: bool
    missing: tuple[str, ...]  # expected facts not said (their first alternative)
    forbidden: tuple[str, ...]  # must-not phrases that were said


def judge(question: Question, text: str) -> Judgement:
    missing = tuple(f[0] for f in question.must_contain if not any(said(a, text) for a in f))
    forbidden = tuple(p for p in question.must_not_contain if said(p, text))
    return Judgement(not missing and not forbidden, missing, forbidden)


def _facts(text: str) -> tuple[set[str], set[str], set[str]]:
    """(times like "9 am", prices like "95 dollars", numbers like "9" / "12:30") of normalised
    text; a time's and a price's number count as numbers too."""
    times = {" ".join(m.groups()) for m in _TIME.finditer(text)}
    prices = {f"{m.group(1)} dollars" for m in _PRICE.finditer(text)}
    numbers = set(_NUMBER.findall(text))
    return times, prices, numbers


class KnownFacts:
    """The numbers, times and prices the agent's sources state."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.times: set[str] = set()
        self.prices: set[str] = set()
        self.numbers: set[str] = set()
        for text in texts:
            times, prices, numbers = _facts(normalise(text))
            self.times |= times
            self.prices |= prices
            self.numbers |= numbers | {t.split()[0] for t in times}

    def invented(self, text: str, expected: Sequence[str] = ()) -> tuple[str, ...]:
        """What ``text`` states that neither the sources nor ``expected`` phrases state: a time
        with am/pm, a price, or a bare number, checked as what it is ("9 pm" is invented even
        where "9 am" is known)."""
        allowed = KnownFacts(expected)
        spoken = normalise(text)
        times, prices, numbers = _facts(spoken)
        out = [t for t in times if t not in self.times | allowed.times]
        out += [p for p in prices if p not in self.prices | allowed.prices]
        within = {t.split()[0] for t in times} | {p.split()[0] for p in prices}
        out += [
            n for n in numbers - within if n not in self.numbers | allowed.numbers
        ]  # bare numbers ("open until 6", "press 9")
        return tuple(sorted(out))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (as the other benchmarks: ``benchmarks/context``)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
