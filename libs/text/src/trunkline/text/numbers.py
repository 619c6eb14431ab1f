"""Spelled-out numbers as values, read the way a listener hears them.

A run of number words is one number while each word can continue it ("twenty five",
"one hundred and five", "two thousand and six"); a word that cannot continue it starts the
next number: a unit after a unit ("four five" is 4 and 5 — digits read one by one), a tens
word after a unit or a tens word ("five twenty" is 5 and 20), a unit of ten or more after a
tens word ("twenty twelve"). "and" joins only after a scale and before a unit or tens word.
With ``years=True`` a teen followed by a tens word is read as a year said in two halves
("nineteen sixty six" is 1966), as the grounding guard wants; otherwise it is two numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.text.vocabulary import SCALES, TENS, UNITS


@dataclass(frozen=True, slots=True)
class NumberRun:
    value: int
    start: int  # index of its first word
    used: int  # how many words it took


def _parts(word: str) -> tuple[str, ...]:
    """ "twenty-four" -> ("twenty", "four") when both halves are number words."""
    if "-" in word:
        parts = tuple(word.split("-"))
        if len(parts) == 2 and parts[0] in TENS and parts[1] in UNITS and UNITS[parts[1]] < 10:
            return parts
    return (word,)


def read_number(words: Sequence[str], start: int, *, years: bool = False) -> tuple[int, int] | None:
    """The number spelled from ``words[start]`` on (lower-case words): (value, words used),
    or None when ``words[start]`` does not begin one."""
    if years:
        year = _year(words, start)
        if year is not None:
            return year
    total, current, last, i, used = 0, 0, "", start, 0
    while i < len(words):
        parts = _parts(words[i])
        if len(parts) == 2:  # "twenty-four": tens then unit in one word
            if last in ("unit", "teen", "tens"):
                break
            current += TENS[parts[0]] + UNITS[parts[1]]
            last = "unit"
        elif (w := parts[0]) in UNITS:
            if last in ("unit", "teen") or (last == "tens" and UNITS[w] >= 10):
                break
            current += UNITS[w]
            last = "teen" if UNITS[w] >= 10 else "unit"
        elif w in TENS:
            if last in ("unit", "teen", "tens"):
                break
            current += TENS[w]
            last = "tens"
        elif w in SCALES and used:
            if SCALES[w] == 100:
                if current >= 100 or last == "scale":
                    break
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * SCALES[w]
                current = 0
            last = "scale"
        elif (
            w == "and"
            and last == "scale"
            and i + 1 < len(words)
            and (_parts(words[i + 1])[0] in UNITS or _parts(words[i + 1])[0] in TENS)
        ):
            last = "and"
        else:
            break
        i += 1
        used = i - start
    if not used:
        return None
    return total + current, used


def _year(words: Sequence[str], start: int) -> tuple[int, int] | None:
    """ "nineteen sixty six" -> (1966, 3); "twenty ten"/"nineteen oh five" are not handled."""
    if start + 1 >= len(words):
        return None
    first, second = words[start], words[start + 1]
    if first not in UNITS or UNITS[first] < 10 or second not in TENS:
        return None
    tail = read_number(words, start + 1)
    if tail is None or tail[0] >= 100:
        return None
    return UNITS[first] * 100 + tail[0], 1 + tail[1]


def spelled_numbers(words: Sequence[str], *, years: bool = False) -> list[NumberRun]:
    """Every spelled-out number in ``words`` (lower case), left to right."""
    runs: list[NumberRun] = []
    i = 0
    while i < len(words):
        found = read_number(words, i, years=years)
        if found is None:
            i += 1
            continue
        runs.append(NumberRun(found[0], i, found[1]))
        i += found[1]
    return runs
