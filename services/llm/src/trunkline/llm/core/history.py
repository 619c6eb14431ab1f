"""Bounded history: a long call's oldest turns folded into one short summary line, in blocks.

Pure. The prompt's history is cut into turns (a turn starts at each caller message; what comes
before the first one, the greeting, is a turn of its own). While the turns fit ``verbatim_tokens``
they all stay verbatim. When a turn takes them over it, the oldest ``fold_turns`` turns are
folded, once, into a summary line built from the caller's own words ("Earlier in this call the
caller asked: ..."), and later turns are appended verbatim again until the next block is due
(:func:`folded_count` replays the call's growth, so this is a pure function of the history). So
the folded count only grows, in jumps: the prompt's prefix (system message, summary, verbatim
turns) stays the same from one turn to the next and a prefix cache (llama.cpp's KV cache,
vLLM's) reuses it; once every ``fold_turns`` turns or so it changes and is evaluated again, at
most the summary plus the verbatim budget. Dropping the oldest message every turn instead would
shift the whole history each turn and re-evaluate all of it.

The summary keeps the caller's most recent folded questions that fit ``summary_tokens`` (each cut
to ``question_words`` words); older ones are dropped from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trunkline.llm.core.types import ChatMessage

SUMMARY_LEAD = "Earlier in this call the caller asked:"
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """``verbatim_tokens``: budget of the history kept as it is (0: no folding, the history is
    only cut to the prompt budget); ``fold_turns``: turns folded at a time; ``summary_tokens``:
    cap of the summary line; ``question_words``: words kept of each folded question."""

    verbatim_tokens: int = 384
    fold_turns: int = 4
    summary_tokens: int = 96
    question_words: int = 12

    def __post_init__(self) -> None:
        if self.verbatim_tokens < 0 or self.summary_tokens < 0:
            raise ValueError("history policy: token budgets must be >= 0")
        if self.fold_turns < 1 or self.question_words < 1:
            raise ValueError("history policy: fold_turns and question_words must be >= 1")


OFF = HistoryPolicy(verbatim_tokens=0)
DEFAULT = HistoryPolicy()


@dataclass(frozen=True, slots=True)
class CompactHistory:
    """``summary``: the system message standing for the folded turns (None: nothing folded or
    nothing to say); ``history``: the turns kept verbatim; ``folded``: messages folded."""

    summary: ChatMessage | None
    history: tuple[ChatMessage, ...]
    folded: int
    folded_turns: int


def split_turns(history: Sequence[ChatMessage]) -> list[tuple[ChatMessage, ...]]:
    """The history as turns: each starts at a caller message (the greeting before the first
    one is a turn of its own), so an assistant's tool call stays with its results."""
    turns: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return [tuple(t) for t in turns]


def folded_count(costs: Sequence[int], policy: HistoryPolicy) -> int:
    """Turns to fold, replaying the call as it grew: each time a turn takes the verbatim turns
    over ``verbatim_tokens``, the oldest ``fold_turns`` of them are folded (again while still
    over). A pure function of the turns, and never smaller for a longer history with the same
    beginning: the fold point only moves forward, a block at a time, and after a fold the
    verbatim turns have a block's worth of room to grow before the next one."""
    if policy.verbatim_tokens <= 0:
        return 0
    folded = 0
    verbatim = 0
    for seen, cost in enumerate(costs, start=1):
        verbatim += cost
        while verbatim > policy.verbatim_tokens and folded < seen:
            step = min(policy.fold_turns, seen - folded)
            verbatim -= sum(costs[folded : folded + step])
            folded += step
    return folded


def shorten(text: str, words: int) -> str:
    parts = text.split()
    if len(parts) <= words:
        return " ".join(parts)
    return " ".join(parts[:words]) + ELLIPSIS


def summary_line(
    questions: Sequence[str], count_tokens: Callable[[str], int], policy: HistoryPolicy
) -> str:
    """ "Earlier in this call the caller asked: "q1"; "q2"." with the latest questions that fit
    ``summary_tokens`` ("" when not even one does)."""
    quoted = [f'"{shorten(q, policy.question_words)}"' for q in questions if q.strip()]
    kept: list[str] = []
    for item in reversed(quoted):
        candidate = [item, *kept]
        lead = SUMMARY_LEAD if len(candidate) == len(quoted) else f"{SUMMARY_LEAD} {ELLIPSIS}"
        if count_tokens(f"{lead} {'; '.join(candidate)}.") > policy.summary_tokens:
            break
        kept = candidate
    if not kept:
        return ""
    lead = SUMMARY_LEAD if len(kept) == len(quoted) else f"{SUMMARY_LEAD} {ELLIPSIS}"
    return f"{lead} {'; '.join(kept)}."


def compact_history(
    history: Sequence[ChatMessage],
    cost: Callable[[ChatMessage], int],
    count_tokens: Callable[[str], int],
    policy: HistoryPolicy,
) -> CompactHistory:
    """Fold the oldest turns of ``history`` per ``policy`` (``cost``: a message's tokens in
    the prompt, template included)."""
    turns = split_turns(history)
    fold = folded_count([sum(cost(m) for m in turn) for turn in turns], policy)
    if history and history[-1].role == "tool":
        fold = min(fold, len(turns) - 1)  # the tool result still to answer stays verbatim
    if fold == 0:
        return CompactHistory(None, tuple(history), 0, 0)
    folded = [m for turn in turns[:fold] for m in turn]
    questions = [m.content for m in folded if m.role == "user"]
    text = summary_line(questions, count_tokens, policy)
    summary = ChatMessage(role="system", content=text) if text else None
    kept = tuple(m for turn in turns[fold:] for m in turn)
    return CompactHistory(summary, kept, len(folded), fold)
