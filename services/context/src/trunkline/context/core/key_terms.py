"""Key terms of a question, and whether two questions' key terms agree (pure).

A stored answer is only replayed for a question whose key terms agree with the stored
question's, because MiniLM puts "Are you open on Mondays?" 0.92 from "...on Tuesdays?":

- **facts** must be the same on both sides: numbers (``nine`` = ``9``), ordinals (``first`` =
  ``1st``), times (``1 pm`` = ``13:00``; a bare ``8`` matches ``8 am``), days and weekdays,
  months, amounts of money (``$500`` = ``500 dollars``), percentages and names (capitalised words
  inside the sentence, product codes such as ``X2``, acronyms);
- **negation** must have the same parity (``don't``, ``not``, ``never``, ``without`` ...);
- for each **group of contrasting words** (join/leave, open/close, book/cancel/reschedule,
  start/stop, buy/sell, add/remove, increase/decrease, before/after, gas/electricity, peak/off-peak,
  adult/child ...) the two questions must not name different sides. In a *strict* group a side
  named by one question only is a disagreement too ("the standing charge" vs "... for gas").

Everything here is a cheap pass over a few words (a few microseconds per question).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from trunkline.text import MONTH_NUMBERS, ORDINALS, SCALES, TENS, UNITS, read_number
from trunkline.text.contrasts import GROUPS, phrase_index

# --- words -------------------------------------------------------------------------------------

_UNITS, _TENS, _SCALES, _ORDINALS = UNITS, TENS, SCALES, ORDINALS
_LONGEST_NUMBER = 12  # words a spelled-out number can take ("nine hundred and ninety nine ...")
_LAST = {"last", "final"}
# "one" after these is a pronoun ("which one", "the one"), not a number.
_ONE_PRONOUN_AFTER = {
    "which", "the", "this", "that", "each", "every", "any", "no", "another", "a", "an", "one",
    "some", "other", "right", "new", "old", "cheapest", "best",
}  # fmt: skip
_WEEKDAYS = {
    "monday": "monday", "tuesday": "tuesday", "wednesday": "wednesday", "thursday": "thursday",
    "friday": "friday", "saturday": "saturday", "sunday": "sunday", "tues": "tuesday",
    "weds": "wednesday", "thurs": "thursday", "today": "today", "tomorrow": "tomorrow",
    "tonight": "tonight", "yesterday": "yesterday", "weekend": "weekend", "weekday": "weekday",
    "holiday": "holiday",
}  # fmt: skip
_MONTHS = {
    **MONTH_NUMBERS, "jan": 1, "feb": 2, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
# Month names that are also ordinary words: months only when capitalised inside the sentence or
# next to a number ("in May", "May 5th", "5 March").
_AMBIGUOUS_MONTHS = {"may", "march", "august", "jan", "dec"}
_CURRENCY_SIGNS = {"$": "usd", "£": "gbp", "€": "eur"}
_CURRENCY_WORDS = {
    "dollar": "usd", "dollars": "usd", "bucks": "usd", "pound": "gbp", "pounds": "gbp",
    "quid": "gbp", "euro": "eur", "euros": "eur",
}  # fmt: skip
_SUBUNITS = {"cent": "usd", "cents": "usd", "pence": "gbp", "penny": "gbp", "p": "gbp"}
_PERCENT = {"percent", "per cent", "%"}
_NEGATIONS = {
    "not", "no", "never", "nobody", "nothing", "none", "neither", "nor", "without", "cannot",
    "cant", "dont", "doesnt", "didnt", "wont", "isnt", "arent", "wasnt", "werent", "havent",
    "hasnt", "shouldnt", "wouldnt", "couldnt", "mustnt", "aint",
}  # fmt: skip
# Capitalised words that name nothing particular.
_NOT_NAMES = {
    "i", "i'm", "i'd", "i'll", "i've", "ok", "okay", "dr", "mr", "mrs", "ms", "miss", "st",
    "kwh", "kw", "mwh", "am", "pm", "a.m", "p.m", "tv", "hi", "hello", "please", "thanks",
}  # fmt: skip

_CURLY = "\u2019"  # a typographic apostrophe
_TOKEN = re.compile(
    r"[$£€]?\d+(?:[.,:]\d+)*(?:st|nd|rd|th|am|pm|a\.m\.|p\.m\.|p|k|%)?"
    r"|[A-Za-z]+\d[A-Za-z\d]*"
    r"|[A-Za-z]+(?:['\u2019][A-Za-z]+)*(?:-[A-Za-z]+)*"
    r"|[$£€%]|[.?!;,]",
    re.IGNORECASE,
)


# --- contrast groups: trunkline.text.contrasts -----------------------------------------------


_PHRASES = phrase_index(GROUPS)
_LONGEST = max(len(p) for p in _PHRASES)
_PARTICLES = {"on", "off", "up", "down", "in", "out"}
# Particle verbs may take their object in between: "switch roaming off", "turn it on".
_SPLIT = {p: hit for p, hit in _PHRASES.items() if len(p) == 2 and p[1] in _PARTICLES}
_PHRASE_STARTS = {p[0] for p in _PHRASES}
_SPLIT_VERBS = {p[0] for p in _SPLIT}
_STRICT = {g.name: g.strict for g in GROUPS}


# --- key terms ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyTerms:
    """What must agree between two questions for one's answer to serve the other."""

    facts: frozenset[tuple[str, str]]  # (kind, value): ("n", "9"), ("t", "13:00"), ...
    negated: bool
    sides: frozenset[tuple[str, int]]  # (group, side) named
    asks: str = ""  # what the question asks for: "yes_no", "time", "amount" ... ("": unknown)


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str  # as written
    low: str  # lower case, curly apostrophes straightened
    starts_sentence: bool


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    start = True
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        if raw in ".?!;,":
            start = True
            continue
        out.append(_Tok(raw, raw.lower().replace(_CURLY, "'"), start))
        start = False
    return out


def _number_words(toks: Sequence[_Tok], i: int) -> tuple[int, int] | None:
    """A spelled-out number starting at ``i`` ("twenty four", "one hundred and fifty", "a
    hundred"): (value, tokens used), or None. The shared reader does the arithmetic."""
    words = [tok.low for tok in toks[i : i + _LONGEST_NUMBER]]
    if words[0] in ("a", "an") and len(words) > 1 and words[1] in _SCALES:
        found = read_number(["one", *words[1:]], 0)  # "a hundred" = "one hundred"
    else:
        found = read_number(words, 0)
    return found


def _time_suffix(toks: Sequence[_Tok], j: int) -> str:
    """``am``/``pm`` at ``j`` (also ``a.m.``, ``p.m.``), else ''."""
    if j < len(toks) and toks[j].low.rstrip(".") in ("am", "pm", "a.m", "p.m"):
        return "am" if toks[j].low.startswith("a") else "pm"
    return ""


def _clock(hour: int, minute: int, suffix: str) -> tuple[str, str] | None:
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    if not (0 <= hour < 24 and 0 <= minute < 60):
        return None
    return ("t", f"{hour:02d}:{minute:02d}")


def _is_month(toks: Sequence[_Tok], i: int) -> bool:
    tok = toks[i]
    if tok.low not in _AMBIGUOUS_MONTHS:
        return True
    capitalised = tok.text[:1].isupper() and not tok.starts_sentence
    near_number = any(
        0 <= k < len(toks) and (toks[k].low[:1].isdigit() or toks[k].low in _ORDINALS)
        for k in (i - 1, i + 1, i - 2, i + 2)
    )
    return capitalised or near_number


def _money_unit(toks: Sequence[_Tok], j: int) -> tuple[str, float] | None:
    """The currency word at ``j``: (currency, multiplier), e.g. ("gbp", 0.01) for pence."""
    if j >= len(toks):
        return None
    word = toks[j].low
    if word in _CURRENCY_WORDS:
        return _CURRENCY_WORDS[word], 1.0
    if word in _SUBUNITS and word != "p":
        return _SUBUNITS[word], 0.01
    return None


def _amount(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


@lru_cache(maxsize=8192)
def key_terms(text: str) -> KeyTerms:  # noqa: PLR0915 - one pass over the words
    """The key terms of ``text`` (remembered: stored questions are screened again and again)."""
    toks = _tokens(text)
    lows = [t.low for t in toks]
    facts: set[tuple[str, str]] = set()
    sides: set[tuple[str, int]] = set()
    negations = 0
    i = 0
    while i < len(toks):
        tok = toks[i]
        low = tok.low
        # contrast phrases, longest first
        matched = False
        if low in _PHRASE_STARTS:
            for size in range(min(_LONGEST, len(toks) - i), 0, -1):
                hit = _PHRASES.get(tuple(lows[i : i + size]))
                if hit is not None:
                    sides.add(hit)
                    if size > 1:
                        i += size
                        matched = True
                    break
        if matched:
            continue
        if low in _SPLIT_VERBS:
            for gap in (2, 3):
                if i + gap < len(toks) and not any(
                    t.starts_sentence for t in toks[i + 1 : i + gap + 1]
                ):
                    split = _SPLIT.get((low, lows[i + gap]))
                    if split is not None:
                        sides.add(split)
                        break
        # negation
        if low in _NEGATIONS or low.endswith("n't"):
            negations += 1
            i += 1
            continue
        # numbers written with digits: money, times, percentages, ordinals, plain numbers
        if low[:1].isdigit() or (low[:1] in _CURRENCY_SIGNS and len(low) > 1):
            i += _digits(toks, i, facts)
            continue
        if low in _CURRENCY_SIGNS and i + 1 < len(toks) and toks[i + 1].low[:1].isdigit():
            i += 1  # "$ 50": the sign then the number
            value = _parse_number(toks[i].low)
            if value is not None:
                facts.add(("$", f"{_CURRENCY_SIGNS[low]}:{_amount(value)}"))
            i += 1
            continue
        # times in words
        if low in ("noon", "midday"):
            facts.add(("t", "12:00"))
        elif low == "midnight":
            facts.add(("t", "00:00"))
        elif low in ("half", "quarter") and i + 2 < len(toks) and toks[i + 1].low in ("past", "to"):
            spelled = _number_words(toks, i + 2)
            hour = spelled[0] if spelled else _parse_int(toks[i + 2].low)
            if hour is not None and 1 <= hour <= 12:
                used = spelled[1] if spelled else 1
                minute = 30 if low == "half" else 15
                if toks[i + 1].low == "to":
                    hour, minute = hour - 1 if hour > 1 else 12, 60 - minute
                clock = _clock(hour, minute, _time_suffix(toks, i + 2 + used))
                if clock:
                    facts.add(clock)
                i += 2 + used + (1 if _time_suffix(toks, i + 2 + used) else 0)
                continue
        elif low in _WEEKDAYS or (low.endswith("s") and low[:-1] in _WEEKDAYS):
            facts.add(("d", _WEEKDAYS.get(low) or _WEEKDAYS[low[:-1]]))
        elif low in _MONTHS and _is_month(toks, i):
            facts.add(("m", str(_MONTHS[low])))
        elif low in _ORDINALS:
            facts.add(("o", str(_ORDINALS[low])))
        elif low in _LAST and _ordinal_last(toks, i):
            facts.add(("o", "last"))
        elif low in _PERCENT:
            pass
        elif low in _UNITS or low in _TENS or low in ("a", "an") or "-" in low:
            spelled = _number_words(toks, i)
            if spelled is not None and not (
                low == "one" and i > 0 and toks[i - 1].low in _ONE_PRONOUN_AFTER
            ):
                value, used = spelled
                i += used
                i += _after_number(toks, i, value, facts)
                continue
            if spelled is None:
                _maybe_name(tok, facts)
        else:
            _maybe_name(tok, facts)
        i += 1
    return KeyTerms(frozenset(facts), negations % 2 == 1, frozenset(sides), question_type(toks))


def _ordinal_last(toks: Sequence[_Tok], i: int) -> bool:
    """ "the last appointment", not "how long does it last?" (the verb)."""
    if i + 1 >= len(toks) or toks[i + 1].starts_sentence:
        return False
    return toks[i + 1].low not in ("for", "until", "till", "longer", "and", "or", "over")


def _parse_number(text: str) -> float | None:
    digits = re.match(r"[$£€]?(\d+(?:,\d{3})*(?:\.\d+)?)", text)
    if digits is None:
        return None
    return float(digits.group(1).replace(",", ""))


def _parse_int(text: str) -> int | None:
    value = _parse_number(text)
    return int(value) if value is not None and value == int(value) else None


def _digits(toks: Sequence[_Tok], i: int, facts: set[tuple[str, str]]) -> int:
    """Facts of the digit token at ``i`` (and the unit after it); tokens used."""
    low = toks[i].low
    sign = _CURRENCY_SIGNS.get(low[:1], "")
    body = low[1:] if sign else low
    clock = re.fullmatch(r"(\d{1,2})[:.](\d{2})(am|pm|a\.m\.|p\.m\.)?", body)
    if clock and not sign:
        suffix = (clock.group(3) or "")[:1]
        suffix = {"a": "am", "p": "pm"}.get(suffix, "") or _time_suffix(toks, i + 1)
        found = _clock(int(clock.group(1)), int(clock.group(2)), suffix)
        if found:
            facts.add(found)
        return 1 + (1 if not clock.group(3) and _time_suffix(toks, i + 1) else 0)
    m = re.fullmatch(r"(\d+(?:,\d{3})*(?:\.\d+)?)(st|nd|rd|th|am|pm|a\.m\.|p\.m\.|p|k|%)?", body)
    if m is None:
        return 1
    value = float(m.group(1).replace(",", ""))
    suffix = m.group(2) or ""
    if sign:
        facts.add(("$", f"{sign}:{_amount(value * (1000 if suffix == 'k' else 1))}"))
        return 1 + (1 if _money_unit(toks, i + 1) else 0)
    if suffix in ("st", "nd", "rd", "th"):
        facts.add(("o", _amount(value)))
        return 1
    if suffix in ("am", "pm", "a.m.", "p.m."):
        found = _clock(int(value), 0, suffix[:1] + "m")
        if found:
            facts.add(found)
        return 1
    if suffix == "p":
        facts.add(("$", f"gbp:{_amount(value / 100)}"))
        return 1
    if suffix == "%":
        facts.add(("%", _amount(value)))
        return 1
    if suffix == "k":
        value *= 1000
    return 1 + _after_number(toks, i + 1, value, facts)


def _after_number(toks: Sequence[_Tok], j: int, value: float, facts: set[tuple[str, str]]) -> int:
    """Record ``value`` read just before ``j`` with the unit that follows it (am/pm, o'clock,
    a currency, percent): tokens used from ``j``."""
    suffix = _time_suffix(toks, j)
    if suffix and value == int(value):
        found = _clock(int(value), 0, suffix)
        if found:
            facts.add(found)
            return 1
    if j < len(toks) and toks[j].low in ("o'clock", "oclock") and 1 <= value <= 12:
        facts.add(("n", _amount(value)))  # hour of either half of the day: a bare number
        return 1
    unit = _money_unit(toks, j)
    if unit is not None:
        facts.add(("$", f"{unit[0]}:{_amount(value * unit[1])}"))
        return 1
    if j + 1 < len(toks) and toks[j].low == "per" and toks[j + 1].low == "cent":
        facts.add(("%", _amount(value)))
        return 2
    if j < len(toks) and toks[j].low == "percent":
        facts.add(("%", _amount(value)))
        return 1
    facts.add(("n", _amount(value)))
    return 0


def _maybe_name(tok: _Tok, facts: set[tuple[str, str]]) -> None:
    """Capitalised words inside the sentence, acronyms and product codes are names."""
    text = tok.text.replace(_CURLY, "'")
    low = tok.low
    if low in _NOT_NAMES:
        return
    has_digit = any(c.isdigit() for c in text)
    acronym = len(text) >= 2 and text.isupper() and text.isalpha()
    capitalised = text[:1].isupper() and not tok.starts_sentence
    if has_digit or acronym or capitalised:
        name = low.removesuffix("'s").removesuffix("'")
        facts.add(("e", name))


# --- what a question asks for ----------------------------------------------------------------

_AUX = {
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "may",
    "might", "shall", "should", "have", "has", "am", "isn't", "aren't", "don't", "doesn't",
    "can't", "won't", "wouldn't", "couldn't", "shouldn't",
}  # fmt: skip
_OPENERS = {
    "and", "so", "but", "ok", "okay", "well", "hi", "hello", "hey", "um", "uh", "also", "then",
    "please", "sorry", "yes", "no", "right", "oh",
}  # fmt: skip
_TIME_UNITS = {"minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month",
               "months", "year", "years"}  # fmt: skip
_WH = {"when": "time", "where": "place", "who": "person", "whom": "person", "why": "reason"}
# Kinds of wh-question one answer may serve: "who do I call" is how to get help, "where do I
# send it" how to send it.
_SERVES = {frozenset({"procedure", "person"}), frozenset({"procedure", "place"})}


def question_type(toks: Sequence[_Tok]) -> str:
    """What the question asks for, from its opening words: "yes_no" (is/do/can ...), "time"
    (when, what time, how early), "amount" (how much), "duration" (how long, how many months),
    "count", "place", "person", "reason", "procedure" (how do I ..., what should I do),
    "what" (what/which + anything else); "" when no question is found."""
    for i, tok in enumerate(toks):
        if not tok.starts_sentence and i > 0:
            continue
        j = i
        while j < len(toks) and toks[j].low in _OPENERS:
            j += 1
        found = _frame(toks, j)
        if found:
            return found
    return ""


def _frame(toks: Sequence[_Tok], j: int) -> str:
    def word(k: int) -> str:
        return toks[k].low if k < len(toks) else ""

    first = word(j)
    if first in _AUX:
        # "can you tell me when ...", "do you know how ...": the embedded question counts
        if word(j + 1) == "you" and word(j + 2) in ("tell", "know", "let"):
            for k in range(j + 3, min(j + 6, len(toks))):
                inner = _frame(toks, k)
                if inner and inner != "yes_no":
                    return inner
        return "yes_no"
    if first in _WH:
        return _WH[first]
    if first == "how":
        second = word(j + 1)
        if second == "much":
            return "amount"
        if second == "long":
            return "duration"
        if second == "many":
            return "duration" if word(j + 2) in _TIME_UNITS else "count"
        if second in ("early", "late", "soon"):
            return "time"
        if second == "far":
            return "duration" if word(j + 3) in ("advance", "ahead") else "place"
        if second == "often":
            return "frequency"
        return "procedure"
    if first in ("what", "which", "what's"):
        second = word(j + 1)
        if second == "time" or (second == "day" and first != "what's"):
            return "time"
        if (
            first != "what's"
            and second in ("should", "do", "must")
            and "do" in (word(j + 4), word(j + 5), word(j + 3))
        ):
            return "procedure"  # "what should I do", "what do I need to do"
        return "what"
    return ""


def _same_question(a: str, b: str) -> bool:
    """Whether one answer can serve both: equal kinds, an unknown one, or a plain "what"
    beside any wh-question (not beside a yes/no question)."""
    if not a or not b or a == b:
        return True
    if "what" in (a, b):
        return "yes_no" not in (a, b)
    return frozenset({a, b}) in _SERVES


# --- agreement ---------------------------------------------------------------------------------

_KIND_NAMES = {
    "n": "number", "o": "ordinal", "t": "time", "d": "day", "m": "month", "$": "money",
    "%": "percent", "e": "name",
}  # fmt: skip


def _compatible(fact: tuple[str, str], other: tuple[str, str]) -> bool:
    """One fact states the other: equal, or a bare number read as an hour, an amount of money
    or an ordinal on the other side ("at 8" / "at 8 am", "over 500" / "over $500")."""
    if fact == other:
        return True
    if other[0] == "n":
        fact, other = other, fact
    if fact[0] != "n":
        return False
    number, (kind, value) = float(fact[1]), other
    if kind == "t":
        hour, minute = int(value[:2]), int(value[3:])
        return minute == 0 and number == int(number) and int(number) % 12 == hour % 12
    if kind == "$":
        return value.split(":")[1] == fact[1]
    return kind == "o" and value == fact[1]


def _covered(fact: tuple[str, str], others: Iterable[tuple[str, str]]) -> bool:
    return any(_compatible(fact, other) for other in others)


def disagreements(a: KeyTerms, b: KeyTerms) -> tuple[str, ...]:
    """Why the key terms of two questions differ; empty when they agree."""
    found: list[str] = []
    only_a = sorted(f for f in a.facts if not _covered(f, b.facts))
    only_b = sorted(f for f in b.facts if not _covered(f, a.facts))
    kinds = sorted({k for k, _ in only_a} | {k for k, _ in only_b})
    for kind in kinds:
        left = ",".join(v for k, v in only_a if k == kind) or "-"
        right = ",".join(v for k, v in only_b if k == kind) or "-"
        found.append(f"{_KIND_NAMES[kind]} {left} vs {right}")
    if not _same_question(a.asks, b.asks):
        found.append(f"asks {a.asks} vs {b.asks}")
    if a.negated != b.negated:
        found.append("negation")
    groups = sorted({g for g, _ in a.sides} | {g for g, _ in b.sides})
    for group in groups:
        left_sides = {s for g, s in a.sides if g == group}
        right_sides = {s for g, s in b.sides if g == group}
        if left_sides == right_sides:
            continue
        if (left_sides and right_sides) or _STRICT[group]:
            found.append(f"{group} {_side_names(group, left_sides)} vs "
                         f"{_side_names(group, right_sides)}")  # fmt: skip
    return tuple(found)


def _side_names(group: str, sides: set[int]) -> str:
    spec = next(g for g in GROUPS if g.name == group)
    return "+".join(spec.sides[s][0] for s in sorted(sides)) or "-"


def agree(a: str, b: str) -> tuple[str, ...]:
    """:func:`disagreements` of two texts."""
    return disagreements(key_terms(a), key_terms(b))
