"""The caller's intent by the nearest example phrase (pure).

The agent spec lists example phrases per intent (out of domain, small talk, goodbye); Resolve
embeds the query once for the semantic search and compares the same vector with the examples'.
The gateway acts on the answer with the agent's threshold and policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class IntentMatch:
    intent: str  # "" when the agent has no examples
    score: float  # cosine similarity to the closest example of ``intent``
    example: str = ""


def nearest_intent(
    query: Vector, examples: Mapping[str, tuple[tuple[str, ...], npt.NDArray[np.float32]]]
) -> IntentMatch:
    """The intent whose closest example is most similar to ``query`` (unit vectors).

    ``examples`` maps an intent to its phrases and their unit vectors (one row each)."""
    best = IntentMatch("", 0.0)
    for intent, (phrases, vectors) in examples.items():
        if not phrases:
            continue
        scores = vectors @ query
        row = int(np.argmax(scores))
        score = float(scores[row])
        if score > best.score:
            best = IntentMatch(intent, score, phrases[row])
    return best
