"""Stage 4 backends: a cross-encoder behind an HTTP scoring endpoint, and the embedded fallback.

Scoring endpoints (``api``):

- ``tei``: Text Embeddings Inference ``POST /rerank`` ``{"query", "texts"}``
  -> ``[{"index", "score"}]``
- ``vllm-score``: vLLM ``POST /score`` ``{"model", "text_1", "text_2"}``
  -> ``{"data": [{"index", "score"}]}``
- ``vllm-rerank``: vLLM (Jina/Cohere shape) ``POST /rerank`` ``{"model", "query", "documents"}``
  -> ``{"results": [{"index", "relevance_score"}]}``
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from trunkline.context.backends.guarded import CallPolicy, guarded
from trunkline.context.core.ranking import embedded_scores
from trunkline.context.core.types import Hit

ScoringApi = Literal["tei", "vllm-score", "vllm-rerank"]


class Ranker(ABC):
    """Scores candidates for a query (higher is better), one score per hit, in input order."""

    name: str = "ranker"

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=0.5, retries=1)

    async def score(self, query: str, hits: Sequence[Hit]) -> list[float]:
        if not hits:
            return []
        scores = await guarded(self.policy, f"rank.{self.name}", lambda: self._impl(query, hits))
        if len(scores) != len(hits):
            raise ValueError(f"ranker {self.name} returned {len(scores)} scores for {len(hits)}")
        return scores

    @abstractmethod
    async def _impl(self, query: str, hits: Sequence[Hit]) -> list[float]: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class EmbeddedRanker(Ranker):
    """BM25 + vector similarity fused by reciprocal rank (no model, no network)."""

    name = "embedded"

    async def _impl(self, query: str, hits: Sequence[Hit]) -> list[float]:
        return embedded_scores(query, hits)


class HttpScoringRanker(Ranker):
    """A cross-encoder served by TEI or vLLM."""

    name = "cross_encoder"

    def __init__(
        self,
        base_url: str,
        api: ScoringApi = "tei",
        model: str = "",
        policy: CallPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(policy)
        self.api = api
        self.model = model
        self._client = client or httpx.AsyncClient(base_url=base_url.rstrip("/"))

    async def score_texts(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text for ``query`` (e.g. stored questions: are they the same?)."""
        if not texts:
            return []
        scores = await guarded(
            self.policy, f"rank.{self.name}", lambda: self._post(query, list(texts))
        )
        if len(scores) != len(texts):
            raise ValueError(f"ranker {self.name} returned {len(scores)} scores for {len(texts)}")
        return scores

    async def _impl(self, query: str, hits: Sequence[Hit]) -> list[float]:
        return await self._post(query, [h.chunk.text for h in hits])

    async def _post(self, query: str, texts: list[str]) -> list[float]:
        if self.api == "tei":
            body: dict[str, Any] = {"query": query, "texts": texts, "truncate": True}
            response = await self._client.post("/rerank", json=body)
            response.raise_for_status()
            return _by_index(response.json(), len(texts), "score")
        if self.api == "vllm-score":
            body = {"model": self.model, "text_1": query, "text_2": texts}
            response = await self._client.post("/score", json=body)
            response.raise_for_status()
            return _by_index(response.json()["data"], len(texts), "score")
        body = {"model": self.model, "query": query, "documents": texts}
        response = await self._client.post("/rerank", json=body)
        response.raise_for_status()
        return _by_index(response.json()["results"], len(texts), "relevance_score")

    async def aclose(self) -> None:
        await self._client.aclose()


def _by_index(items: Any, n: int, field: str) -> list[float]:
    if not isinstance(items, list):
        raise ValueError(f"scoring endpoint answered {type(items).__name__}, expected a list")
    scores: list[float | None] = [None] * n
    for item in items:
        index = int(item["index"])
        if not 0 <= index < n:
            raise ValueError(f"scoring endpoint returned index {index} for {n} texts")
        scores[index] = float(item[field])
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise ValueError(f"scoring endpoint returned no score for texts {missing}")
    return [float(s) for s in scores if s is not None]
