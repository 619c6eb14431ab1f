"""Cut the loops a small Whisper model falls into ("Hello there. Hello there. Hello")."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _norm(word: str) -> str:
    return "".join(_WORD.findall(word.lower()))


def _loop_start(words: list[str], period: int, min_span: int) -> int | None:
    """Earliest index from which ``words`` repeats with ``period`` to the very end.

    The loop must span at least ``min_span`` words; its last copy may be cut short by the
    token cap, so a trailing partial copy counts towards the span, its last word possibly cut
    inside ("... teeth whit" repeating "... teeth whitening").
    """
    n = len(words)

    def same(i: int) -> bool:
        earlier = words[i - period]
        return words[i] == earlier or (
            i == n - 1 and bool(words[i]) and earlier.startswith(words[i])
        )

    tail = n  # smallest index such that every word from it on equals the one a period back
    while tail - 1 - period >= 0 and same(tail - 1):
        tail -= 1
    begin = max(tail - period, 0)
    if n - begin >= min_span:
        return begin
    return None


def cut_repeats(text: str, *, max_period: int = 48) -> str:
    """Drop a phrase that repeats in a loop until the end of ``text``, keeping its first copy.

    A single repeated word needs three copies ("yes yes yes" -> "yes"); a longer phrase needs
    one copy and then at least its first three words again ("thank you thank you" -> "thank
    you"; "I want to pay. I want to" -> "I want to pay."). Repeats in the middle of the text
    are speech and stay. Punctuation and case are ignored when comparing but kept.
    """
    raw = text.split()
    words = [_norm(w) for w in raw]
    if len(words) < 2:
        return text.strip()
    best: int | None = None
    for period in range(1, min(max_period, len(words) - 1) + 1):
        min_span = 3 if period == 1 else period + min(period, 3)
        begin = _loop_start(words, period, min_span)
        if begin is not None and (best is None or begin + period < best):
            best = begin + period
    if best is None:
        return text.strip()
    return " ".join(raw[:best]).strip()
