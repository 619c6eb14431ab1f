"""One scope's stored answers held in memory: a matrix of question vectors and their rows (pure).

The semantic cache's durable store (Milvus) stays the source of truth; a :class:`ScopeAnswers`
is an immutable snapshot of one :class:`~trunkline.context.core.cache_policy.CacheScope`'s
entries, searched exactly (cosine over unit vectors is a dot product) with expiry evaluated at
lookup time. Changes make a new snapshot (:meth:`ScopeAnswers.with_entry`,
:meth:`ScopeAnswers.without`, :func:`reconcile`), so a lookup never sees half an update.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trunkline.context.core.types import CachedAnswer, CacheEntry

Matrix = npt.NDArray[np.float32]


def unit_rows(vectors: Matrix) -> Matrix:
    """``vectors`` with each row scaled to length 1 (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    out: Matrix = (array / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class ScopeAnswers:
    """The entries of one scope, row ``i`` of ``matrix`` being ``entries[i]``'s question vector."""

    entries: tuple[CacheEntry, ...]
    matrix: Matrix  # (len(entries), dim), unit rows
    expires_at: npt.NDArray[np.int64]
    rows: Mapping[str, int]  # entry id -> row

    @classmethod
    def of(cls, entries: Sequence[CacheEntry], vectors: Matrix, dim: int) -> ScopeAnswers:
        if len(entries) != len(vectors):
            raise ValueError(f"{len(entries)} entries but {len(vectors)} vectors")
        matrix = unit_rows(vectors) if len(entries) else np.zeros((0, dim), dtype=np.float32)
        if matrix.shape[1] != dim:
            raise ValueError(f"vectors of dimension {matrix.shape[1]}, expected {dim}")
        return cls._make(tuple(entries), matrix)

    @classmethod
    def _make(cls, entries: tuple[CacheEntry, ...], matrix: Matrix) -> ScopeAnswers:
        expires = np.array([e.expires_at for e in entries], dtype=np.int64)
        rows = {e.entry_id: i for i, e in enumerate(entries)}
        if len(rows) != len(entries):
            raise ValueError("two entries share an id")
        return cls(entries, matrix, expires, rows)

    @classmethod
    def empty(cls, dim: int) -> ScopeAnswers:
        return cls.of((), np.zeros((0, dim), dtype=np.float32), dim)

    def __len__(self) -> int:
        return len(self.entries)

    def vector(self, entry_id: str) -> Matrix | None:
        row = self.rows.get(entry_id)
        return None if row is None else self.matrix[row]

    def nearest(self, vector: Matrix, now: int, floor: float, limit: int) -> list[CachedAnswer]:
        """The ``limit`` unexpired entries (``expires_at > now``) nearest to ``vector`` with a
        cosine of at least ``floor``, best first: what the durable store's search returns."""
        if not len(self.entries) or limit <= 0:
            return []
        query = unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        scores = self.matrix @ query
        usable = (self.expires_at > now) & (scores >= floor)
        rows = np.flatnonzero(usable)
        if len(rows) > limit:
            rows = rows[np.argpartition(-scores[rows], limit - 1)[:limit]]
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return [
            CachedAnswer(
                query=self.entries[i].query,
                answer=self.entries[i].answer,
                citations=self.entries[i].citations,
                similarity=float(scores[i]),
                entry_id=self.entries[i].entry_id,
            )
            for i in rows
        ]

    def with_entry(self, entry: CacheEntry, vector: Matrix) -> ScopeAnswers:
        """This snapshot with ``entry`` added, or replacing the entry of the same id."""
        row = unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        keep = [i for i, e in enumerate(self.entries) if e.entry_id != entry.entry_id]
        entries = (*(self.entries[i] for i in keep), entry)
        matrix: Matrix = np.concatenate([self.matrix[keep], row]).astype(np.float32)
        return ScopeAnswers._make(entries, matrix)

    def without(self, entry_ids: Collection[str]) -> ScopeAnswers:
        """This snapshot less the entries ``entry_ids`` names."""
        keep = [i for i, e in enumerate(self.entries) if e.entry_id not in entry_ids]
        if len(keep) == len(self.entries):
            return self
        return ScopeAnswers._make(tuple(self.entries[i] for i in keep), self.matrix[keep])


def missing_vectors(held: ScopeAnswers | None, entries: Sequence[CacheEntry]) -> list[str]:
    """Ids of ``entries`` whose vector ``held`` lacks (an entry's id fixes its question, and so
    its vector: a changed answer under a known id needs no new vector)."""
    known = held.rows if held is not None else {}
    return [e.entry_id for e in entries if e.entry_id not in known]


def reconcile(
    held: ScopeAnswers | None,
    entries: Sequence[CacheEntry],
    fetched: Mapping[str, Matrix],
    dim: int,
) -> ScopeAnswers:
    """The snapshot of the durable store's ``entries`` for a scope: vectors of ids ``held``
    already has are reused, the others come from ``fetched``. An entry whose vector is in
    neither (deleted between the two reads) is left out: a miss is always safe."""
    rows: list[CacheEntry] = []
    vectors: list[Matrix] = []
    for entry in entries:
        vector = held.vector(entry.entry_id) if held is not None else None
        if vector is None:
            vector = fetched.get(entry.entry_id)
        if vector is None:
            continue
        rows.append(entry)
        vectors.append(np.asarray(vector, dtype=np.float32).reshape(-1))
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    return ScopeAnswers.of(rows, matrix, dim)
