"""Stage 4, ranking: ordering by external scores, and the embedded fallback.

The fallback fuses two rankings of the candidates by reciprocal rank fusion: BM25 over the
candidate texts (lexical) and the vector similarity from the search (semantic).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from trunkline.context.core.types import Hit

_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
        "how", "i", "if", "in", "is", "it", "my", "of", "on", "or", "our", "the", "to", "we",
        "what", "when", "where", "which", "who", "why", "will", "with", "you", "your",
    }
)  # fmt: skip


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP]


def bm25_scores(
    query: str, documents: Sequence[str], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of ``query`` against each document, IDF taken over ``documents`` themselves."""
    docs = [tokens(d) for d in documents]
    if not docs:
        return []
    avg_len = sum(len(d) for d in docs) / len(docs) or 1.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    n = len(docs)
    scores: list[float] = []
    q_terms = set(tokens(query))
    for d in docs:
        tf = Counter(d)
        score = 0.0
        for term in q_terms:
            if term not in tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            freq = tf[term]
            score += idf * freq * (k1 + 1) / (freq + k1 * (1 - b + b * len(d) / avg_len))
        scores.append(score)
    return scores


def ranks(scores: Sequence[float]) -> list[int]:
    """1-based rank of each position when sorted by score descending (stable)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    out = [0] * len(scores)
    for rank, index in enumerate(order, start=1):
        out[index] = rank
    return out


def rrf(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> list[float]:
    """Reciprocal rank fusion of several rankings of the same items."""
    if not rankings:
        return []
    w = weights or [1.0] * len(rankings)
    return [
        sum(w[j] / (k + rankings[j][i]) for j in range(len(rankings)))
        for i in range(len(rankings[0]))
    ]


def embedded_scores(query: str, hits: Sequence[Hit]) -> list[float]:
    """The fallback ranker: RRF of BM25 and vector similarity (similarity weighted higher)."""
    lexical = bm25_scores(query, [f"{h.chunk.section} {h.chunk.text}" for h in hits])
    semantic = [h.similarity for h in hits]
    return rrf([ranks(semantic), ranks(lexical)], weights=[1.0, 0.6])


def order_by(hits: Sequence[Hit], scores: Sequence[float], top_k: int) -> list[tuple[Hit, float]]:
    """The ``top_k`` hits by score, best first (ties keep search order)."""
    if len(scores) != len(hits):
        raise ValueError(f"{len(scores)} scores for {len(hits)} hits")
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [(hits[i], scores[i]) for i in order[:top_k]]
