"""The grounding guard (pure): a clause reaches the caller only when its checkable facts are
supported by the turn's context block, live records, tool results or the agent's own prompt.

Checkable facts are what a caller acts on and a small model invents: numbers (digits and
spelled out), clock times, weekdays, months and proper names. Both sides are normalised the
same way ("nine" = 9, "1 pm" = 13:00, "Monday to Friday" = every weekday in between, an ISO
date = its month, day and weekday), so a fact is supported when the same normalised fact occurs
in any support text. The caller's own words are not support: "Are you open until 8 on
Saturday?" must not make "yes, until 8" true.

Known limits: a one-word name at the very start of a sentence is not checked ("England won…"),
nor are relations between facts ("closed on Saturday" when the knowledge says open) — the facts
themselves are.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from trunkline.text import MONTHS, UNITS, WEEKDAYS, spelled_numbers

__all__ = ["Support", "Verdict", "facts_of"]

# "one" is a pronoun far more often than a number ("one of our dentists", "one moment"): alone
# it is not a fact; inside a compound ("one hundred", "twenty one") or before a clock suffix it is.
_PRONOUN_ONE = "one"

_AMPM = r"(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z])"
_HOUR_WORD = "|".join(w for w, n in UNITS.items() if 1 <= n <= 12)  # one .. twelve
_TIME_DIGITS = re.compile(rf"\b(\d{{1,2}})(?:[:.](\d{{2}}))?\s*{_AMPM}", re.I)
_TIME_WORDS = re.compile(
    rf"\b({_HOUR_WORD})(?:[\s-](o'?clock|fifteen|thirty|forty[\s-]five))?\s*{_AMPM}", re.I
)
_OCLOCK = re.compile(rf"\b(\d{{1,2}}|{_HOUR_WORD})\s+o'?clock\b", re.I)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_NOON = re.compile(r"\b(noon|midday|midnight)\b", re.I)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2})?)?")
_CENTS = re.compile(r"\b(\d+) dollars? and (\d{1,2}) cents?\b", re.I)
_DIGITS = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z'&-]*")
_ITEM_MARK = re.compile(r"(?m)^\[\d+\]\s")
_RANGE = re.compile(
    rf"\b({'|'.join(WEEKDAYS)})s?\s*(?:to|through|thru|until|till|-|\u2013)\s*({'|'.join(WEEKDAYS)})s?\b",
    re.I,
)
_WEEKDAY = re.compile(rf"\b({'|'.join(WEEKDAYS)})s?\b", re.I)
_MONTH = re.compile(rf"\b({'|'.join(m for m in MONTHS if m != 'may')})\b", re.I)
_MAY = re.compile(r"\bMay\b(?=\s+\d)|(?<=\d\s)May\b|(?<=\d[a-z]{2}\s)May\b|(?<=\bof\s)May\b")
_GROUPS = {
    "weekdays": WEEKDAYS[:5],
    "weekday": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
    "weekend": WEEKDAYS[5:],
}
# Capitalised words that are not names.
_NOT_NAMES = frozenset(
    {
        "i",
        "i'm",
        "i'll",
        "i've",
        "i'd",
        "am",
        "pm",
        "ok",
        "okay",
        "yes",
        "no",
        "hello",
        "hi",
        "thanks",
        "thank",
        "sure",
        "sorry",
        "please",
        "great",
    }
)
_TITLE = re.compile(r"\b(Dr|Mr|Mrs|Ms|Prof|St)\.\s")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*)(?:[-*•#>\s]*)$")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The checkable facts of one clause and those nothing supported."""

    facts: tuple[str, ...]
    unsupported: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.unsupported


class Support:
    """What a turn may state: the facts of its support texts, and their words (for names)."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.facts: set[str] = set()
        self.words: set[str] = set()
        self.add(*texts)

    def copy(self) -> Support:
        support = Support()
        support.facts = set(self.facts)
        support.words = set(self.words)
        return support

    def add(self, *texts: str) -> None:
        for raw in texts:
            text = _ITEM_MARK.sub(" ", raw)  # a context block's "[2]" states no number
            self.facts |= facts_of(text, support=True)
            self.words |= {_bare(w) for w in _WORD.findall(text)}
            self.words |= {p for w in self.words for p in w.split("-") if p}

    def check(self, clause: str) -> Verdict:
        facts = facts_of(clause)
        unsupported = []
        for fact in sorted(facts):
            if fact in self.facts:
                continue
            if fact.startswith("name:") and all(
                part in self.words for part in fact[5:].replace("-", " ").split()
            ):
                continue
            if fact.startswith("clock:") and _clock_supported(fact, self.facts):
                continue
            unsupported.append(fact)
        return Verdict(tuple(sorted(facts)), tuple(unsupported))


def facts_of(text: str, *, support: bool = False) -> set[str]:
    """The normalised checkable facts of ``text``. As ``support``, a time also supports its
    hour as a bare number ("9 am" lets a clause say "from 9"), and a weekday range every day
    it spans. Each pattern's matches are taken out of the text before the next looks."""
    facts: set[str] = set()
    rest = text
    for pattern, read in _READERS:
        for match in pattern.finditer(rest):
            facts |= read(match, support)
        rest = pattern.sub(" ; ", rest)
    if support:
        for match in _RANGE.finditer(rest):
            first = WEEKDAYS.index(match.group(1).lower())
            last = WEEKDAYS.index(match.group(2).lower())
            facts |= {
                f"weekday:{WEEKDAYS[i % 7]}" for i in range(first, last + 1 + 7 * (last < first))
            }
    facts |= {f"weekday:{m.group(1).lower()}" for m in _WEEKDAY.finditer(rest)}
    for word in re.findall(r"\b[a-z]+\b", rest.lower()):
        facts |= {f"weekday:{day}" for day in _GROUPS.get(word, ())}
    facts |= {f"month:{m.group(1).lower()}" for m in _MONTH.finditer(rest)}
    if _MAY.search(rest):
        facts.add("month:may")
    facts |= {f"number:{_number(m.group(0))}" for m in _DIGITS.finditer(rest)}
    facts |= {f"number:{n}" for n in _spelled_numbers(rest)}
    facts |= {f"name:{n}" for n in _names(rest)}
    return facts


def _iso_date(match: re.Match[str], support: bool) -> set[str]:
    year, month, day = (int(g) for g in match.groups()[:3])
    facts = {f"number:{year}", f"number:{day}", f"month:{MONTHS[month - 1]}"}
    if match.group(4) is not None:
        hour, minute = int(match.group(4)), int(match.group(5))
        facts |= {f"time:{hour:02d}:{minute:02d}", f"clock:{hour % 12 or 12}:{minute:02d}"}
        facts.add(f"number:{hour % 12 or 12}")
    with contextlib.suppress(ValueError):  # not a calendar date
        facts.add(f"weekday:{WEEKDAYS[date(year, month, day).weekday()]}")
    if support:
        facts.add(f"number:{month}")
    return facts


def _cents(match: re.Match[str], support: bool) -> set[str]:
    return {f"number:{_number(match.group(1) + '.' + match.group(2).ljust(2, '0'))}"}


def _time_digits(match: re.Match[str], support: bool) -> set[str]:
    return _time(int(match.group(1)), int(match.group(2) or 0), match.group(3), support)


def _time_words(match: re.Match[str], support: bool) -> set[str]:
    hour = UNITS.get(match.group(1).lower(), 0)
    return _time(hour, _minute_word(match.group(2)), match.group(3), support)


def _oclock(match: re.Match[str], support: bool) -> set[str]:
    word = match.group(1).lower()
    hour = int(word) if word.isdigit() else UNITS.get(word, 0)
    return {f"clock:{hour}:00", *([f"number:{hour}"] if support else [])}


def _clock(match: re.Match[str], support: bool) -> set[str]:
    """ "9:30" without am/pm: a clock time in either half of the day (24-hour past 12)."""
    hour, minute = int(match.group(1)), int(match.group(2))
    facts = {f"time:{hour:02d}:{minute:02d}" if hour > 12 else f"clock:{hour}:{minute:02d}"}
    if support:
        facts |= {f"time:{hour:02d}:{minute:02d}", f"number:{hour}"}
        if hour < 12:
            facts.add(f"time:{hour + 12:02d}:{minute:02d}")
    return facts


def _noon(match: re.Match[str], support: bool) -> set[str]:
    return {"time:00:00" if match.group(1).lower() == "midnight" else "time:12:00"}


_READERS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], bool], set[str]]], ...] = (
    (_ISO_DATE, _iso_date),
    (_CENTS, _cents),
    (_TIME_DIGITS, _time_digits),
    (_TIME_WORDS, _time_words),
    (_OCLOCK, _oclock),
    (_CLOCK, _clock),
    (_NOON, _noon),
)


def _time(hour: int, minute: int, ampm: str, support: bool) -> set[str]:
    pm = ampm.lower().startswith("p")
    hour24 = hour % 12 + (12 if pm else 0)
    facts = {f"time:{hour24:02d}:{minute:02d}"}
    if support:
        facts |= {f"number:{hour}", f"clock:{hour}:{minute:02d}"}
        if minute:
            facts.add(f"number:{minute}")
    return facts


def _clock_supported(fact: str, facts: set[str]) -> bool:
    """A time said without am/pm ("at 9:30") is supported by either reading."""
    hour, minute = (int(p) for p in fact[6:].split(":"))
    return any(f"time:{h:02d}:{minute:02d}" in facts for h in (hour % 12, hour % 12 + 12))


def _minute_word(word: str | None) -> int:
    if not word or word.lower().replace("'", "") == "oclock":
        return 0
    word = word.lower()
    return 15 if word == "fifteen" else 30 if word == "thirty" else 45


def _number(token: str) -> str:
    token = re.sub(r"(st|nd|rd|th)$", "", token).replace(",", "")
    if "." in token:
        token = token.rstrip("0").rstrip(".")
    return str(int(token)) if token.isdigit() else token


def _spelled_numbers(text: str) -> list[int]:
    """Spelled-out numbers ("twenty five", "one hundred and twenty", "nineteen sixty six" as a
    year), read by the shared reader; a lone "one" is a pronoun, not a number."""
    words = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    return [
        run.value
        for run in spelled_numbers(words, years=True)
        if not (run.used == 1 and words[run.start] == _PRONOUN_ONE)
    ]


def _bare(word: str) -> str:
    """Lower case, without quotes or a possessive: "Dental's" -> "dental"."""
    word = word.lower().strip("'")
    return word[:-2] if word.endswith("'s") else word


def _names(text: str) -> list[str]:
    """Runs of capitalised words that are not at a sentence start (a run of two or more counts
    there too: "Mexico City hosted…"), without weekdays, months and interjections."""
    text = _TITLE.sub(r"\1 ", text)  # "Dr. Smith" is one name, not a sentence end
    groups: list[tuple[int, list[str]]] = []  # (start offset, words)
    end = -1
    for match in _WORD.finditer(text):
        word = match.group(0)
        lower = _bare(word)
        if not word[0].isupper() or lower in _NOT_NAMES or lower.rstrip("s") in WEEKDAYS + MONTHS:
            continue
        if groups and text[end : match.start()].strip() == "":
            groups[-1][1].append(lower)
        else:
            groups.append((match.start(), [lower]))
        end = match.end()
    return [
        " ".join(words)
        for start, words in groups
        if len(words) > 1 or not _SENTENCE_START.search(text[:start])
    ]
