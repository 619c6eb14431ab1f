"""Is the caller in the middle of reading out a number? (pure; no I/O)

Callers read card, account and phone numbers in groups — "four five three nine, one four eight
eight, ..." — and pause between the groups about as long as they pause at the end of a question
(Piper's voice: 220-340 ms, the silence endpoint is 400 ms). The speculative transcript of the
pause tells the two apart: when it ends in a run of three or more digits (written as digits or
as digit words) the caller is probably not done, and the turn machine waits longer before it ends
the turn (``TurnConfig.number_hold_ms``). Two digits or fewer ("at 3", "for 2 people") and numbers
that are amounts or times ("$150", "10:30") do not count, nor a run of 16 digits or more: a whole
card number, the longest a caller reads out, so the turn ends at the usual endpoint. An agent
whose callers read numbers of a known length (its account numbers: ``complete`` lengths) does not
hold a run of exactly that many digits either: the number is whole, the caller is done.
"""

from __future__ import annotations

import re

DIGIT_WORDS = {
    "zero": 1,
    "oh": 1,
    "one": 1,
    "two": 1,
    "three": 1,
    "four": 1,
    "five": 1,
    "six": 1,
    "seven": 1,
    "eight": 1,
    "nine": 1,
    "double": 0,  # "double four": the digits follow
    "triple": 0,
}
MIN_DIGITS = 3
WHOLE_CARD = 16
_TOKEN = re.compile(r"[^\s,;]+")
_TRIM = ".,;:!?…\"')("


def _digits_in(token: str) -> int | None:
    """How many digits ``token`` stands for, or None when it is not part of a number read out."""
    word = token.strip(_TRIM).lower()
    if not word:
        return 0
    if re.fullmatch(r"\d+(?:-\d+)*", word):
        return sum(ch.isdigit() for ch in word)
    return DIGIT_WORDS.get(word)


def trailing_digits(text: str) -> int:
    """Digits in the run of number tokens ``text`` ends with (0 when it ends in a word).
    A digit word only counts next to another number token, so "a new one" is not a number."""
    tokens = _TOKEN.findall(text)
    count = 0
    run = 0
    for token in reversed(tokens):
        digits = _digits_in(token)
        if digits is None:
            break
        count += digits
        run += 1
    if run == 1 and not any(ch.isdigit() for ch in tokens[-1]):
        return 0  # one digit word alone ("one", "Oh.") is a word
    return count


def number_in_progress(text: str, complete: frozenset[int] = frozenset()) -> int:
    """The digits of the number ``text`` ends in while it may go on (``MIN_DIGITS`` up to
    ``WHOLE_CARD``, and not one of the ``complete`` lengths), else 0."""
    digits = trailing_digits(text)
    if digits in complete:
        return 0
    return digits if MIN_DIGITS <= digits < WHOLE_CARD else 0
