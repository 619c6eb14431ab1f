"""Cut the loops a small Whisper model falls into ("Hello there. Hello there. Hello",
"in 1966, 1966, 1966", a sentence said once and written twice)."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_DIGITS = frozenset(
    ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
)
_CLAUSE_TAIL = ",;:-"
_SENTENCE_END = ".?!"
_MAX_RESTART = 2  # words of a loop's next copy that the restart rule drops
_MIN_SENTENCE = 3  # words a sentence needs before its restart counts as a loop


def _norm(word: str) -> str:
    """The word as compared: letters and digits, or the symbol it is ("$")."""
    return "".join(_WORD.findall(word.lower())) or word.strip(_CLAUSE_TAIL + _SENTENCE_END + ",")


def _is_digit_word(word: str) -> bool:
    """A digit said alone ("1", "07", "nine"): a run of them is a number, not a loop."""
    return (word.isdigit() and len(word) <= 2) or word in _DIGITS


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


def _cut_tail_loop(raw: list[str], words: list[str], max_period: int) -> list[str]:
    """Drop a loop that runs to the end of the text, keeping its first copy."""
    best: int | None = None
    for period in range(1, min(max_period, len(words) - 1) + 1):
        if period == 1 and _is_digit_word(words[-1]):
            continue  # "my PIN is 1 1 1"
        min_span = 3 if period == 1 else period + min(period, 3)
        begin = _loop_start(words, period, min_span)
        if begin is not None and (best is None or begin + period < best):
            best = begin + period
    if best is None:
        return raw
    kept = raw[:best]
    last = raw[-1][-1:] if raw[-1] else ""
    if kept and kept[-1][-1:] in _CLAUSE_TAIL:  # "1966, 1966, 1966." -> "1966."
        end = last if last in _SENTENCE_END else ""
        kept = [*kept[:-1], kept[-1][:-1] + end]
    return kept


def _cut_restart(raw: list[str], words: list[str]) -> list[str]:
    """Drop one or two words after the last sentence end that begin an earlier sentence or
    clause again ("Are you open on Saturday? Are", "in my kitchen, what should I do? What
    should"): the model starting its loop, stopped by the token cap before the loop rule
    could see it. A lone symbol left at the end ("$150, $") goes too."""
    if len(raw) > 1 and not _WORD.search(raw[-1]):
        while len(raw) > 1 and not _WORD.search(raw[-1]):
            raw, words = raw[:-1], words[:-1]
        raw = [*raw[:-1], raw[-1].rstrip(_CLAUSE_TAIL + ",")]
    ends = [i for i, word in enumerate(raw) if word[-1:] in _SENTENCE_END]
    if not ends or not 1 <= len(raw) - 1 - ends[-1] <= _MAX_RESTART:
        return raw
    tail = words[ends[-1] + 1 :]
    breaks = [i for i, word in enumerate(raw[: ends[-1]]) if word[-1:] in _SENTENCE_END + ","]
    for start in [0, *(i + 1 for i in breaks)]:
        if ends[-1] - start + 1 >= _MIN_SENTENCE and words[start : start + len(tail)] == tail:
            return raw[: ends[-1] + 1]
    return raw


def _copies(words: list[str], start: int, period: int) -> int:
    """How many times ``words[start:start + period]`` follows itself from ``start``."""
    unit = words[start : start + period]
    count = 1
    while words[start + count * period : start + (count + 1) * period] == unit:
        count += 1
    return count


def _collapse_runs(
    raw: list[str], words: list[str], max_period: int
) -> tuple[list[str], list[str]]:
    """Anywhere in the text, a phrase of four words or more said twice in a row, or a shorter
    one said three times or more, is kept once (its last copy, which leads into what follows)."""
    out_raw: list[str] = []
    out_words: list[str] = []
    i = 0
    n = len(words)
    while i < n:
        best: tuple[int, int] | None = None  # (span, period)
        for period in range(1, min(max_period, (n - i) // 2) + 1):
            unit = words[i : i + period]
            if not all(unit) or (period == 1 and _is_digit_word(unit[0])):
                continue
            count = _copies(words, i, period)
            if i + count * period == n:
                continue  # a loop to the end: the tail rule keeps its first copy
            if count >= 3 or (count >= 2 and period >= 4):
                span = count * period
                if best is None or span > best[0]:
                    best = (span, period)
        if best is None:
            out_raw.append(raw[i])
            out_words.append(words[i])
            i += 1
            continue
        span, period = best
        last_copy = i + span - period
        out_raw.extend(raw[last_copy : i + span])
        out_words.extend(words[last_copy : i + span])
        i += span
    return out_raw, out_words


def cut_repeats(text: str, *, max_period: int = 48) -> str:
    """Drop phrases the model wrote in a loop, keeping one copy.

    At the end of the text a single repeated word needs three copies ("yes yes yes" -> "yes");
    a longer phrase needs one copy and then at least its first three words again ("thank you
    thank you" -> "thank you"; "I want to pay. I want to" -> "I want to pay."), the last copy
    possibly cut short; one or two words after the last sentence that start an earlier
    sentence again are that loop's beginning ("Is it free? Is" -> "Is it free?"). Anywhere
    else, a phrase of four words or more written twice in a row, or a shorter one three times
    ("in 1966, 1966, 1966 and"), is kept once. Digits said one by
    one ("1 1 1") are a number and stay. Punctuation and case are ignored when comparing but
    kept.
    """
    raw = text.split()
    words = [_norm(w) for w in raw]
    if len(words) < 2:
        return text.strip()
    raw, words = _collapse_runs(raw, words, max_period)
    if len(words) >= 2:
        raw = _cut_tail_loop(raw, words, max_period)
        raw = _cut_restart(raw, [_norm(w) for w in raw])
    return " ".join(raw).strip()
