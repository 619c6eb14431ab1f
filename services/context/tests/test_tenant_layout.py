"""Both tenant layouts against Milvus Lite: isolation, deletion, cache invalidation, layout guard.

Vectors come from the deterministic :class:`HashEmbedder`, so tenants can hold identical text
(same vectors): only the partition and the expression tell them apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trunkline.agents import RankMode, Retrieval
from trunkline.context.backends.milvus import (
    ANSWERS,
    CHUNKS,
    LayoutMismatchError,
    MilvusAnswerCache,
    MilvusChunkStore,
    MilvusDatabase,
)
from trunkline.context.backends.tenant_layout import LAYOUTS, TenantLayout, tenant_partition
from trunkline.context.core.cache_policy import AnswerFacts
from trunkline.context.core.chunking import Section
from trunkline.context.core.filters import access_filter, visible
from trunkline.context.core.types import Caller, ChunkMeta
from trunkline.context.fakes import HashEmbedder
from trunkline.context.ingest.ingestor import Ingestor
from trunkline.context.resolver import Resolver

pytestmark = pytest.mark.integration

NOW = 1_750_000_000
TEXT = "Refunds are paid within {days} days to the card used for the order."
# Tenant ids that a careless partition naming would merge ("a.b", "a_b" and "a-b" -> "a_b").
TENANTS = ["acme", "globex", "a.b", "a_b", "a-b", "a__b"]


@dataclass
class Kb:
    db: MilvusDatabase
    store: MilvusChunkStore
    ingestor: Ingestor
    resolver: Resolver


@pytest.fixture(scope="module", params=LAYOUTS)
def kb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kb]:
    layout: TenantLayout = request.param
    db = MilvusDatabase(str(tmp_path_factory.mktemp(layout) / "kb.db"), layout=layout)
    embedder = HashEmbedder()
    store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
    ingestor = Ingestor(embedder, store, cache)

    async def fill() -> None:
        for days, tenant in enumerate(TENANTS, start=3):
            await ingestor.ingest_sections(
                f"{tenant}/refunds.md",
                [Section("refunds", TEXT.format(days=days))],
                ChunkMeta(tenant, ("*",)),
                digest=f"refunds-{tenant}",
            )

    asyncio.run(fill())
    yield Kb(db, store, ingestor, Resolver(embedder, store, cache))
    db.close()


def test_the_layout_is_the_one_asked_for(kb: Kb) -> None:
    partitions = set(kb.db.client.list_partitions(CHUNKS))
    own = {tenant_partition(t) for t in TENANTS}
    if kb.db.layout == "partition":
        assert own <= partitions
    else:
        assert not own & partitions


async def test_a_tenant_sees_only_its_own_copy_of_identical_text(kb: Kb) -> None:
    for days, tenant in enumerate(TENANTS, start=3):
        caller = Caller(tenant, "caller", NOW)
        result = await kb.resolver.resolve(
            "when are refunds paid", caller, Retrieval(top_k=10, rank_mode=RankMode.NONE)
        )
        assert result.block is not None
        assert [i.source for i in result.block.items] == [f"{tenant}/refunds.md"]
        assert f"within {days} days" in result.block.text


async def test_a_search_scoped_to_one_tenant_with_anothers_filter_finds_nothing(kb: Kb) -> None:
    vector = (await kb.resolver.embedder.embed([TEXT.format(days=3)]))[0]
    acme = access_filter(Caller("acme", "caller", NOW))
    assert [h.chunk.meta.tenant for h in await kb.store.search(vector, acme, 10, tenant="acme")]
    assert await kb.store.search(vector, acme, 10, tenant="globex") == []
    globex = access_filter(Caller("globex", "caller", NOW))
    assert await kb.store.search(vector, globex, 10, tenant="acme") == []


async def test_a_tenant_without_rows_reads_empty(kb: Kb) -> None:
    vector = (await kb.resolver.embedder.embed(["refunds"]))[0]
    nobody = Caller("nobody", "caller", NOW)
    assert await kb.store.search(vector, access_filter(nobody), 10, tenant="nobody") == []
    assert await kb.store.sources("nobody") == []
    assert await kb.store.source_hash("nobody", "x.md") is None
    assert await kb.store.delete_sources("nobody", ["x.md"]) == {"x.md": 0}


async def test_delete_and_cache_invalidation_stay_within_the_tenant(kb: Kb) -> None:
    meta = ChunkMeta("initech", ("caller",))
    caller = Caller("initech", "caller", NOW)
    first = await kb.ingestor.ingest("hours.md", b"# Hours\nOpen from 9 to 5 on weekdays.", meta)
    for tenant, version in (("initech", first.kb_version), ("acme", None)):
        info = await kb.resolver.authorize(tenant, "caller")
        facts = AnswerFacts(heard=f"{tenant} hours", grounded=True, retrieval_confidence=0.9)
        stored = await kb.resolver.store_answer(
            "When are you open?", facts, [], tenant=tenant, role="caller",
            agent="bot", kb_version=version or info.kb_version, now=NOW,
        )  # fmt: skip
        assert stored.stored
    hit = await kb.resolver.resolve("When are you open?", caller, Retrieval(), agent="bot")
    assert hit.cached is not None
    assert hit.cached.answer == "initech hours"

    gone = await kb.ingestor.delete("initech", "hours.md")
    assert gone.chunks_deleted == 1
    after = await kb.resolver.resolve("When are you open?", caller, Retrieval(), agent="bot")
    assert after.cached is None, "deletion invalidated initech's cache"
    assert after.block is not None
    assert after.block.items == ()
    assert await kb.store.sources("initech") == []
    acme = Caller("acme", "caller", NOW)
    kept = await kb.resolver.resolve("When are you open?", acme, Retrieval(), agent="bot")
    assert kept.cached is not None, "another tenant's cache is untouched"
    assert kept.cached.answer == "acme hours"
    assert [s.source for s in await kb.store.sources("acme")] == ["acme/refunds.md"]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tenant=st.sampled_from([*TENANTS, "nobody"]),
    scope=st.sampled_from([*TENANTS, "nobody"]),
    role=st.sampled_from(["caller", "staff"]),
    query=st.text(alphabet="abcdefgh refundsaypiw", min_size=1, max_size=40),
)
def test_property_search_returns_only_the_scoped_callers_chunks(
    kb: Kb, tenant: str, scope: str, role: str, query: str
) -> None:
    caller = Caller(tenant, role, NOW)

    async def check() -> list[str]:
        vector = (await kb.resolver.embedder.embed([query]))[0]
        hits = await kb.store.search(vector, access_filter(caller), 50, tenant=scope)
        assert all(visible(h.chunk.meta, caller) for h in hits)
        return [h.chunk.meta.tenant for h in hits]

    found = asyncio.run(check())
    assert set(found) <= ({tenant} & {scope})


def test_an_existing_database_keeps_its_layout(tmp_path: Path) -> None:
    uri = str(tmp_path / "kb.db")
    MilvusDatabase(uri, layout="partition_key").close()
    with pytest.raises(LayoutMismatchError, match="partition_key"):
        MilvusDatabase(uri, layout="partition")
    adopted = MilvusDatabase(uri)
    try:
        assert adopted.layout == "partition_key"
        assert adopted.client.has_collection(ANSWERS)
    finally:
        adopted.close()
