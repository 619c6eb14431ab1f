"""A short extractive summary of a call transcript for the operator (pure, no model needed).

The caller's sentences are scored by how many of the call's recurring content words they carry
(a word the caller repeats is what the call is about), with a bonus for the last sentences
(why they escalate now); the best few are kept in the order they were said.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from trunkline.hitl.core.tickets import Line

_SENTENCE = re.compile(r"[^.!?]+[.!?]?")
_WORD = re.compile(r"[a-z0-9']+")
_STOP_TEXT = """a an and are as at be been but by can could do does did for from had has have he
her him his how i i'm i've i'd if in into is it it's its just me my no not of on or our so that the
their them then there these they this to too up us was we were what when where which who why will
with would you your yes yeah ok okay um uh please hi hello well like get got want know need one
also am very really oh"""
STOPWORDS = frozenset(_STOP_TEXT.split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2]


def extractive_summary(
    lines: Sequence[Line], reason: str = "", max_sentences: int = 3, max_chars: int = 320
) -> str:
    """``reason`` (e.g. "caller_request") first, then the caller's most telling sentences."""
    caller = [
        (index, sentence)
        for index, line in enumerate(lines)
        if line.speaker == "caller"
        for sentence in sentences(line.text)
    ]
    head = f"Escalated: {reason.replace('_', ' ')}." if reason else ""
    if not caller:
        return head or "No caller speech yet."
    counts = Counter(w for line in lines for w in set(content_words(line.text)))
    last_line = caller[-1][0]
    scored: list[tuple[float, int, str]] = []
    for order, (index, sentence) in enumerate(caller):
        words = set(content_words(sentence))
        if not words:
            continue
        score = sum(counts[w] for w in words) / (len(words) ** 0.5)
        if order == len(caller) - 1:
            score += 1.0  # the caller's last sentence: why they escalate now
        elif index == last_line:
            score += 0.5
        scored.append((score, order, sentence))
    if not scored:
        scored = [(0.0, order, s) for order, (_, s) in enumerate(caller)][-max_sentences:]
    best = sorted(sorted(scored, key=lambda item: -item[0])[:max_sentences], key=lambda i: i[1])
    text = " ".join(sentence for _, _, sentence in best)
    summary = f"{head} Caller: {text}" if head else f"Caller: {text}"
    return summary if len(summary) <= max_chars else summary[: max_chars - 1].rstrip() + "…"
