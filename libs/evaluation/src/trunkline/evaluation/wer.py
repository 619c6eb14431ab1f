"""Word error rate on normalised words (``normalize.wer_words``). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trunkline.evaluation.normalize import wer_words


@dataclass(frozen=True, slots=True)
class WerCount:
    """Edits (substitutions + deletions + insertions) against ``words`` reference words."""

    edits: int
    words: int

    @property
    def rate(self) -> float | None:
        return None if self.words == 0 else self.edits / self.words


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> WerCount:
    """Edits needed to turn what was heard into what was said, per normalised word."""
    ref, hyp = wer_words(reference), wer_words(hypothesis)
    return WerCount(edit_distance(ref, hyp), len(ref))


def corpus_wer(counts: Iterable[WerCount]) -> float | None:
    """All edits over all reference words (not the mean of per-utterance rates)."""
    items = list(counts)
    words = sum(c.words for c in items)
    return None if words == 0 else sum(c.edits for c in items) / words
