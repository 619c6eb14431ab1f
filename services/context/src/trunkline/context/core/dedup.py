"""Stage 3, deduplication across overlapping knowledge bases.

Exact duplicates share a content hash (normalised text). Near duplicates have a Jaccard
similarity of word 3-shingles at or above a threshold. Hits arrive best first; the first of each
duplicate group is kept, so the most similar copy survives.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from trunkline.context.core.types import Hit

_WORD = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def content_hash(text: str) -> str:
    """Hash of the normalised text: case, punctuation and spacing do not matter."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def shingles(text: str, size: int = 3) -> frozenset[str]:
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def deduplicate(hits: Sequence[Hit], near_threshold: float = 0.8) -> list[Hit]:
    """Drop exact (same content hash) and near duplicates (shingle Jaccard >= threshold)."""
    kept: list[Hit] = []
    seen_hashes: set[str] = set()
    kept_shingles: list[frozenset[str]] = []
    for hit in hits:
        if hit.chunk.content_hash in seen_hashes:
            continue
        sig = shingles(hit.chunk.text)
        if any(jaccard(sig, other) >= near_threshold for other in kept_shingles):
            continue
        seen_hashes.add(hit.chunk.content_hash)
        kept_shingles.append(sig)
        kept.append(hit)
    return kept
