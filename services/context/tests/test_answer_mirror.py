"""The semantic cache mirror's pure core: one scope's answers as a matrix, searched in memory
the way the durable store searches them (cosine, floor, expiry, best first), and its updates."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.context.core.answer_mirror import (
    ScopeAnswers,
    missing_vectors,
    reconcile,
    unit_rows,
)
from trunkline.context.core.types import CacheEntry

pytestmark = pytest.mark.unit

DIM = 8
NOW = 1_000


def entry(eid: str, answer: str = "", expires_at: int = NOW + 100) -> CacheEntry:
    return CacheEntry(
        entry_id=eid,
        agent="helpdesk.1",
        role="caller",
        kb_version=1,
        query=f"question {eid}",
        answer=answer or f"answer {eid}",
        citations=(f"doc/{eid}.md",),
        stored_at=NOW - 10,
        expires_at=expires_at,
    )


def vec(*values: float) -> np.ndarray:
    out = np.zeros(DIM, dtype=np.float32)
    out[: len(values)] = values
    return out


def snapshot(*rows: tuple[CacheEntry, np.ndarray]) -> ScopeAnswers:
    return ScopeAnswers.of([e for e, _ in rows], np.stack([v for _, v in rows]), DIM)


def test_nearest_is_cosine_best_first_above_the_floor_and_limited() -> None:
    s = snapshot(
        (entry("a"), vec(1, 0)),
        (entry("b"), vec(1, 1)),  # cosine 0.707 with (1, 0)
        (entry("c"), vec(0, 1)),  # 0
        (entry("d"), vec(3, 0.3)),  # 0.995, not unit length as stored: normalised
    )
    found = s.nearest(vec(2, 0), NOW, 0.5, 10)
    assert [c.entry_id for c in found] == ["a", "d", "b"]
    assert [round(c.similarity, 3) for c in found] == [1.0, 0.995, 0.707]
    assert found[0].answer == "answer a"
    assert found[0].citations == ("doc/a.md",)
    assert [c.entry_id for c in s.nearest(vec(1, 0), NOW, 0.5, 2)] == ["a", "d"]
    assert s.nearest(vec(1, 0), NOW, 0.9999, 10)[0].entry_id == "a"
    assert len(s.nearest(vec(1, 0), NOW, 0.9999, 10)) == 1
    assert s.nearest(vec(1, 0), NOW, 0.5, 0) == []
    assert ScopeAnswers.empty(DIM).nearest(vec(1, 0), NOW, 0.0, 4) == []


def test_an_expired_entry_is_never_returned() -> None:
    s = snapshot((entry("old", expires_at=NOW), vec(1, 0)), (entry("new"), vec(1, 0.1)))
    assert [c.entry_id for c in s.nearest(vec(1, 0), NOW, 0.0, 4)] == ["new"]
    assert [c.entry_id for c in s.nearest(vec(1, 0), NOW - 1, 0.0, 4)] == ["old", "new"]
    assert s.nearest(vec(1, 0), NOW + 100, 0.0, 4) == []


def test_with_entry_adds_or_replaces_and_without_removes() -> None:
    s = snapshot((entry("a"), vec(1, 0)), (entry("b"), vec(0, 1)))
    s2 = s.with_entry(entry("a", answer="corrected"), vec(1, 0))
    assert len(s2) == 2
    assert len(s) == 2
    assert s2.nearest(vec(1, 0), NOW, 0.9, 1)[0].answer == "corrected"
    assert s.nearest(vec(1, 0), NOW, 0.9, 1)[0].answer == "answer a"  # snapshots are immutable
    s3 = s2.with_entry(entry("c"), vec(0, 0, 1))
    assert [c.entry_id for c in s3.nearest(vec(0, 0, 1), NOW, 0.9, 4)] == ["c"]
    s4 = s3.without({"a", "zzz"})
    assert sorted(e.entry_id for e in s4.entries) == ["b", "c"]
    assert s4.nearest(vec(1, 0), NOW, 0.5, 4) == []
    assert s4.without({"zzz"}) is s4


def test_reconcile_reuses_known_vectors_fetches_new_ones_and_drops_vanished() -> None:
    held = snapshot((entry("a"), vec(1, 0)), (entry("gone"), vec(0, 1)))
    durable = [entry("a", answer="changed"), entry("new"), entry("no-vector")]
    assert missing_vectors(held, durable) == ["new", "no-vector"]
    assert missing_vectors(None, durable) == ["a", "new", "no-vector"]
    fresh = reconcile(held, durable, {"new": vec(0, 0, 5)}, DIM)
    assert sorted(e.entry_id for e in fresh.entries) == ["a", "new"]
    assert fresh.nearest(vec(1, 0), NOW, 0.9, 1)[0].answer == "changed"
    assert fresh.nearest(vec(0, 1), NOW, 0.5, 4) == []  # the deleted entry is gone
    got = fresh.vector("new")
    assert got is not None
    assert np.allclose(got, unit_rows(vec(0, 0, 5).reshape(1, -1))[0])
    assert len(reconcile(None, [], {}, DIM)) == 0


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="2 entries but 1 vectors"):
        ScopeAnswers.of([entry("a"), entry("b")], np.stack([vec(1)]), DIM)
    with pytest.raises(ValueError, match="dimension 3, expected 8"):
        ScopeAnswers.of([entry("a")], np.ones((1, 3), dtype=np.float32), DIM)
    with pytest.raises(ValueError, match="share an id"):
        ScopeAnswers.of([entry("a"), entry("a")], np.stack([vec(1), vec(1)]), DIM)
