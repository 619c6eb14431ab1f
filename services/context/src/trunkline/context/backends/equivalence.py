"""The semantic cache's second-stage check: does a stored question ask the same as a new one?

A cross-encoder behind the configured scoring endpoint (the rerank endpoint: TEI or vLLM, a
paraphrase or relevance model) scores each (new question, stored question) pair. Where none is
configured, or it fails, the cache falls back to its embedded rule (key terms and MiniLM cosine,
stricter after a failure): see :mod:`trunkline.context.core.cache_match`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from trunkline.context.backends.ranker import HttpScoringRanker


class EquivalenceCheck(ABC):
    """Scores, 0..1, how surely each stored question asks what ``query`` asks."""

    name = "equivalence"

    async def scores(self, query: str, stored: Sequence[str]) -> list[float]:
        if not stored:
            return []
        scores = await self._impl(query, stored)
        if len(scores) != len(stored):
            raise ValueError(f"{self.name} returned {len(scores)} scores for {len(stored)}")
        return scores

    @abstractmethod
    async def _impl(self, query: str, stored: Sequence[str]) -> list[float]: ...


class CrossEncoderCheck(EquivalenceCheck):
    """The rerank endpoint's cross-encoder (its public call owns timeout, retry and spans)."""

    name = "cross_encoder"

    def __init__(self, ranker: HttpScoringRanker) -> None:
        self.ranker = ranker

    async def _impl(self, query: str, stored: Sequence[str]) -> list[float]:
        return await self.ranker.score_texts(query, stored)
