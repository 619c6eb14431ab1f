"""The caller's answer to a callback offer (pure).

When no operator comes in time the caller is asked whether a colleague should call them back;
the next turn is read here: a phone number (figures or digit words, at least ``MIN_DIGITS``)
is a yes with that number; an utterance that starts with a yes ("yes", "sure", "please do")
or asks to be called back is a yes (the number the caller called from); one that starts with a
no ("no thanks", "don't bother", "I'll call again") is a no; a yes or no that goes on with a
question ("Okay, what time do you open?") and anything else is no answer (the caller moved on:
the turn is answered as any other, the offer stays unaccepted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trunkline.gateway.core.entities import spoken_number

MIN_DIGITS = 7  # a callback number: at least a local number
MIN_START_DIGITS = 3  # "... call me back at four one five," (the rest follows after a pause)
MAX_ANSWER_WORDS = 8  # "yeah, that would be great, thank you": longer is more than an answer

_YES = re.compile(
    r"\s*(?:oh\s+)?(?:yes|yeah|yep|yup|sure|ok(?:ay)?|please(?:\s+do)?|alright|all right"
    r"|absolutely|definitely|of course|go ahead|that would be (?:great|good|fine|nice)"
    r"|that'?s fine|sounds good|why not)\b",
    re.I,
)
_CALL_ME = re.compile(r"\b(?:call|ring|phone)\s+me\b", re.I)
_NO = re.compile(
    r"\s*(?:oh\s+)?(?:no\b|nope\b|nah\b|not (?:now|really|needed|necessary)\b"
    r"|no,? thanks?\b|don'?t\b|do not\b|i'?d rather not\b|i'?ll (?:call|try) (?:again|back)\b"
    r"|never ?mind\b)",
    re.I,
)
_ASKS = re.compile(r"\?|\b(?:what|when|where|which|who|how|why|can you|could you)\b", re.I)
_NEGATED_CALL = re.compile(r"\b(?:don'?t|do not|no need to|never)\s+call\b", re.I)


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    accepted: bool
    number: str = ""  # digits the caller gave; empty: the number they called from
    detail: str = ""  # in words, for the trace


def callback_answer(text: str) -> CallbackAnswer | None:
    """The caller's answer to "shall a colleague call you back?", or None (no answer)."""
    text = text.replace("\u2019", "'").strip()
    if not text:
        return None
    number = spoken_number(text, MIN_DIGITS)
    if number is not None and not _NEGATED_CALL.search(text):
        return CallbackAnswer(True, number, f"a number to call: {number}")
    if _NEGATED_CALL.search(text):  # "please don't call me"
        return CallbackAnswer(False, detail=f"declined: {text[:80]!r}")
    # the first digits of a number the caller goes on dictating in the next turn
    start = spoken_number(text, MIN_START_DIGITS) or ""
    if _CALL_ME.search(text):
        return CallbackAnswer(True, start, detail=f"accepted: {text[:80]!r}")
    if _ASKS.search(text) or len(text.split()) > MAX_ANSWER_WORDS:
        return None  # "Okay, what time do you open?": a question, not an answer
    if _YES.match(text):
        return CallbackAnswer(True, start, detail=f"accepted: {text[:80]!r}")
    if _NO.match(text):
        return CallbackAnswer(False, detail=f"declined: {text[:80]!r}")
    return None


_DIGIT_TOKEN = re.compile(r"[a-z]+|[0-9]+")
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_BETWEEN = {"and", "dash", "then", "um", "uh"}


def more_digits(text: str) -> str | None:
    """The digits of an utterance that is nothing but digits (the rest of a number the caller
    dictates in groups, with pauses that end turns: "... five five five." "Zero one zero
    zero."), or None."""
    digits = ""
    for token in _DIGIT_TOKEN.findall(text.lower().replace("\u2019", "'")):
        if token.isdigit():
            digits += token
        elif token in _DIGIT_WORDS:
            digits += _DIGIT_WORDS[token]
        elif token not in _BETWEEN:
            return None
    return digits or None


def spoken_digits(number: str) -> str:
    """A phone number as TTS should read it, digit by digit in groups: "415 555 0100" →
    "4 1 5, 5 5 5, 0 1 0 0" (figures would be read as hundreds)."""
    digits = [d for d in number if d.isdigit()]
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]  # the North American country code is not read out
    if len(digits) == 10:
        groups = [digits[:3], digits[3:6], digits[6:]]
    else:
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return ", ".join(" ".join(group) for group in groups)
