"""Retrieval confidence: how well the knowledge base covers the question.

The best cosine similarity of the semantic search, mapped linearly from ``[floor, ceiling]``
to ``[0, 1]``. The gateway treats a low value as an out-of-domain question.
"""

from __future__ import annotations

from collections.abc import Sequence

from trunkline.context.core.types import Hit


def confidence(hits: Sequence[Hit], floor: float = 0.2, ceiling: float = 0.65) -> float:
    if not hits:
        return 0.0
    best = max(h.similarity for h in hits)
    return min(1.0, max(0.0, (best - floor) / (ceiling - floor)))
