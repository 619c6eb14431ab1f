"""The semantic cache mirror over a real Milvus Lite store: scopes stay apart, expiry holds in
memory, this replica's deletes and purges take effect before the call returns, and another
writer's stores and deletes show within the refresh bound (a fake clock drives the bound).

"Another replica" is a second cache over the same database: a plain ``MilvusAnswerCache``, as
``trunkline cache --uri`` writes, or another ``MirroredAnswerCache``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from trunkline.context.backends.embedder import DIM, Vectors
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusDatabase
from trunkline.context.backends.mirrored_cache import MirroredAnswerCache, MirrorSettings
from trunkline.context.backends.store import AnswerCache
from trunkline.context.core.cache_policy import CacheScope, entry_id

pytestmark = pytest.mark.integration

NOW = 1_760_000_000
REFRESH = 2.0
RNG = np.random.default_rng(11)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def unit(v: np.ndarray) -> Vectors:
    out: Vectors = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def random_vector() -> Vectors:
    return unit(RNG.normal(size=DIM).astype(np.float32))


def near(v: Vectors, noise: float = 0.01) -> Vectors:
    return unit(v + RNG.normal(0, noise, DIM).astype(np.float32))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusDatabase]:
    database = MilvusDatabase(str(tmp_path_factory.mktemp("mirror") / "kb.db"))
    yield database
    database.close()


def mirror(db: MilvusDatabase, clock: Clock, **settings: float) -> MirroredAnswerCache:
    return MirroredAnswerCache(
        MilvusAnswerCache(db),
        MirrorSettings(refresh_s=REFRESH, **settings),  # type: ignore[arg-type]
        clock=clock,
        background=False,
    )


async def put(
    cache: AnswerCache,
    scope: CacheScope,
    query: str,
    vector: Vectors,
    *,
    answer: str = "",
    expires_at: int = NOW + 3600,
) -> str:
    await cache.store(
        scope, query=query, vector=vector, answer=answer or f"answer to {query}",
        citations=["kb/doc.md"], stored_at=NOW, expires_at=expires_at,
    )  # fmt: skip
    return entry_id(scope, query)


async def ids(cache: AnswerCache, scope: CacheScope, vector: Vectors, now: int = NOW) -> list[str]:
    return [c.entry_id for c in await cache.candidates(scope, vector, now, 0.8, 4)]


async def test_scopes_stay_apart_and_results_match_the_durable_search(db: MilvusDatabase) -> None:
    clock = Clock()
    cache = mirror(db, clock)
    durable = cache.durable
    v = random_vector()
    base = CacheScope("mirror-a", "helpdesk.1", "caller", 1)
    others = [
        CacheScope("mirror-a", "helpdesk.1", "operator", 1),  # another role
        CacheScope("mirror-b", "helpdesk.1", "caller", 1),  # another tenant
        CacheScope("mirror-a", "helpdesk.2", "caller", 1),  # another agent version
        CacheScope("mirror-a", "helpdesk.1", "caller", 2),  # another knowledge-base version
    ]
    mine = await put(cache, base, "when do you open", v)
    for n, scope in enumerate(others):
        await put(durable, scope, f"when do you open ({n})", v)
    spread = [await put(durable, base, f"other question {n}", random_vector()) for n in range(30)]
    q = near(v)
    assert await ids(cache, base, q) == [mine]
    for scope in others:
        found = await cache.candidates(scope, q, NOW, 0.8, 4)
        assert [c.query for c in found] == [f"when do you open ({others.index(scope)})"]
        assert found[0].entry_id != mine
    # the same candidates, similarities and fields as Milvus's own filtered search
    for probe in [q, near(v, 0.05), *(random_vector() for _ in range(3))]:
        got = await cache.candidates(base, probe, NOW, 0.0, 5)
        want = await durable.candidates(base, probe, NOW, 0.0, 5)
        assert [c.entry_id for c in got] == [c.entry_id for c in want]
        assert np.allclose([c.similarity for c in got], [c.similarity for c in want], atol=1e-4)
        assert [(c.query, c.answer, c.citations) for c in got] == [
            (c.query, c.answer, c.citations) for c in want
        ]
    held = cache.held(base)
    assert held is not None
    assert len(held) == 1 + len(spread)
    # a store here is served at once, without a refresh
    w = random_vector()
    extra = await put(cache, base, "a new question", w)
    assert await ids(cache, base, near(w)) == [extra]
    assert len(cache.held(base) or ()) == 2 + len(spread)


async def test_expiry_is_honoured_in_memory(db: MilvusDatabase) -> None:
    cache = mirror(db, Clock())
    scope = CacheScope("mirror-exp", "helpdesk.1", "caller", 1)
    v = random_vector()
    short = await put(cache, scope, "is the shop open", v, expires_at=NOW + 10)
    assert await ids(cache, scope, v, NOW) == [short]
    assert await ids(cache, scope, v, NOW + 9) == [short]
    assert await ids(cache, scope, v, NOW + 10) == []
    assert cache.held(scope) is not None  # served from memory, not dropped


async def test_a_delete_or_purge_here_is_never_served_after_it_returns(db: MilvusDatabase) -> None:
    cache = mirror(db, Clock())
    scope = CacheScope("mirror-del", "helpdesk.1", "caller", 1)
    va, vb = random_vector(), random_vector()
    a = await put(cache, scope, "question a", va)
    b = await put(cache, scope, "question b", vb)
    assert await ids(cache, scope, va) == [a]  # loaded and held
    assert await cache.delete("mirror-del", [a]) == 1
    assert await ids(cache, scope, va) == []  # no refresh needed
    assert await ids(cache, scope, vb) == [b]
    assert await cache.invalidate("mirror-del") == 1
    assert await ids(cache, scope, vb) == []
    assert await cache.durable.scope_entries(scope, 10) == []


async def test_another_writer_shows_within_the_refresh_bound(db: MilvusDatabase) -> None:
    clock = Clock()
    here = mirror(db, clock)
    there = mirror(db, clock)  # another replica
    cli = MilvusAnswerCache(db)  # `trunkline cache --uri`
    scope = CacheScope("mirror-ref", "helpdesk.1", "caller", 1)
    vo, vn, vp = random_vector(), random_vector(), random_vector()
    old = await put(here, scope, "old question", vo)
    assert await ids(here, scope, vo) == [old]
    new = await put(there, scope, "new question", vn)
    assert await cache_deleted(there, [old]) == 1
    # within the bound the snapshot is served as read ...
    clock.t += REFRESH
    assert await ids(here, scope, vn) == []
    assert await ids(here, scope, vo) == [old]
    # ... and past it the lookup reads the durable store first
    clock.t += 0.01
    assert await ids(here, scope, vn) == [new]
    assert await ids(here, scope, vo) == []
    # the background pass re-reads a scope once half the bound has passed
    purged = await put(cli, scope, "purged question", vp)
    clock.t += REFRESH / 2
    assert await here.refresh_due() == 1
    assert await ids(here, scope, vp) == [purged]
    await cli.delete("mirror-ref", [purged])
    await put(cli, scope, "new question", vn, answer="a corrected answer")
    clock.t += REFRESH / 2
    assert await here.refresh_due() == 1
    assert await ids(here, scope, vp) == []
    (hit,) = await here.candidates(scope, vn, NOW, 0.8, 4)
    assert hit.answer == "a corrected answer"
    # a scope left unused past idle_s is dropped, not refreshed
    idle = mirror(db, clock, idle_s=10.0)
    assert await ids(idle, scope, vn) == [new]
    clock.t += 11
    assert await idle.refresh_due() == 0
    assert idle.held(scope) is None


async def cache_deleted(cache: AnswerCache, entry_ids: Sequence[str]) -> int:
    return await cache.delete("mirror-ref", entry_ids)


class PausedRead(MilvusAnswerCache):
    """Milvus, with a pause after a scope's vectors are read (before they are applied)."""

    def __init__(self, db: MilvusDatabase) -> None:
        super().__init__(db)
        self.read = asyncio.Event()
        self.go = asyncio.Event()

    async def _vectors_impl(self, tenant: str, entry_ids: Sequence[str]) -> dict[str, Vectors]:
        found = await super()._vectors_impl(tenant, entry_ids)
        self.read.set()
        await self.go.wait()
        return found


async def test_a_read_that_began_before_a_delete_here_is_discarded(db: MilvusDatabase) -> None:
    durable = PausedRead(db)
    cache = MirroredAnswerCache(
        durable, MirrorSettings(refresh_s=REFRESH), clock=Clock(), background=False
    )
    scope = CacheScope("mirror-race", "helpdesk.1", "caller", 1)
    v = random_vector()
    gone = await put(durable, scope, "soon deleted", v)
    lookup = asyncio.create_task(ids(cache, scope, v))
    await durable.read.wait()  # the read saw the entry and its vector ...
    assert await cache.delete("mirror-race", [gone]) == 1  # ... which is deleted here
    durable.go.set()
    assert await lookup == []  # the stale read was not served (the lookup asked Milvus)
    assert cache.held(scope) is None
    assert await ids(cache, scope, v) == []
    assert cache.held(scope) is not None


async def test_a_scope_too_large_is_searched_in_the_durable_store(db: MilvusDatabase) -> None:
    cache = mirror(db, Clock(), scope_entries=3)
    scope = CacheScope("mirror-big", "helpdesk.1", "caller", 1)
    vectors = [random_vector() for _ in range(4)]
    stored = [await put(cache, scope, f"question {n}", v) for n, v in enumerate(vectors)]
    for eid, v in zip(stored, vectors, strict=True):
        assert await ids(cache, scope, near(v)) == [eid]
    assert cache.held(scope) is None
    small = CacheScope("mirror-big", "helpdesk.1", "operator", 1)
    first = await put(cache, small, "question", vectors[0])
    assert await ids(cache, small, vectors[0]) == [first]
    assert cache.held(small) is not None


async def test_a_new_knowledge_base_version_drops_the_old_snapshot(db: MilvusDatabase) -> None:
    cache = mirror(db, Clock())
    v1 = CacheScope("mirror-kb", "helpdesk.1", "caller", 1)
    v2 = CacheScope("mirror-kb", "helpdesk.1", "caller", 2)
    v = random_vector()
    await put(cache, v1, "question", v)
    assert len(await ids(cache, v1, v)) == 1
    assert await ids(cache, v2, v) == []
    assert cache.held(v1) is None
    assert cache.held(v2) is not None


def test_bad_mirror_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="refresh_s must be positive"):
        MirrorSettings(refresh_s=0)
    with pytest.raises(ValueError, match=r"scope_entries must be in 1\.\.16383"):
        MirrorSettings(scope_entries=20_000)
