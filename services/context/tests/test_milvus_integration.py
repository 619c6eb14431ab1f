"""Every stage, ingestion, cache and isolation against Milvus Lite with real MiniLM embeddings.

The store is built once per module from the labelled set in ``tests/data/context``.
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
from trunkline.context import evaluation
from trunkline.context.backends.embedder import MiniLMEmbedder
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.core.cache_policy import AnswerFacts
from trunkline.context.core.chunking import Section
from trunkline.context.core.filters import access_filter, visible
from trunkline.context.core.types import Caller, ChunkMeta
from trunkline.context.errors import AccessDeniedError, UnknownTenantError
from trunkline.context.ingest.ingestor import Ingestor
from trunkline.context.resolver import Resolver

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "context"
TENANTS = ["acme", "globex", "initech"]
ROLES = ["caller", "staff", "admin"]


@dataclass
class Kb:
    db: MilvusDatabase
    store: MilvusChunkStore
    cache: MilvusAnswerCache
    ingestor: Ingestor
    resolver: Resolver
    evalset: evaluation.EvalSet


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kb]:
    db = MilvusDatabase(str(tmp_path_factory.mktemp("milvus") / "kb.db"))
    embedder = MiniLMEmbedder()
    store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
    ingestor = Ingestor(embedder, store, cache)
    evalset = evaluation.load(DATA)
    asyncio.run(evaluation.ingest_all(evalset, ingestor))
    yield Kb(db, store, cache, ingestor, Resolver(embedder, store, cache), evalset)
    embedder.close()
    db.close()


async def test_labelled_questions_recall_and_forbidden_sources(kb: Kb) -> None:
    spec = Retrieval(top_k=5, rank_mode=RankMode.EMBEDDED)
    ranks = []
    for q in kb.evalset.questions:
        result = await kb.resolver.resolve(q.query, q.caller, spec)
        assert result.block is not None
        sources = [i.source for i in result.block.items]
        assert not set(q.forbid) & set(sources), q.query
        if q.expect_source:
            ranks.append(evaluation.reciprocal_rank(q, result.block.items, 5))
    recall = sum(r > 0 for r in ranks) / len(ranks)
    assert recall >= 0.9, f"recall@5 {recall:.2f}"


async def test_stages_report_counts_and_dedup_removes_copies(kb: Kb) -> None:
    caller = Caller("acme", "caller", kb.evalset.default_now)
    result = await kb.resolver.resolve(
        "How can I have my account data deleted?", caller, Retrieval(top_k=10)
    )
    stages = {s.name: s for s in result.stages}
    assert stages["search"].count_out > stages["dedup"].count_out, (
        "duplicate privacy copies dropped"
    )
    assert result.block is not None
    texts = [i.text for i in result.block.items]
    assert len(texts) == len(set(texts))
    assert 'tenant == "acme"' in stages["filter"].detail
    assert result.confidence > 0.5
    assert not result.out_of_domain


async def test_out_of_domain_questions_have_low_confidence(kb: Kb) -> None:
    ood = kb.evalset.out_of_domain
    caller = Caller(ood["tenant"], ood["role"], kb.evalset.default_now)
    for query in ood["queries"]:
        result = await kb.resolver.resolve(query, caller, Retrieval())
        assert result.out_of_domain, query


async def test_errors_for_unknown_tenant_and_role(kb: Kb) -> None:
    with pytest.raises(UnknownTenantError):
        await kb.resolver.resolve("hi", Caller("nobody", "caller", 0), Retrieval())
    with pytest.raises(AccessDeniedError):
        await kb.resolver.resolve("hi", Caller("globex", "intern", 0), Retrieval())


async def test_semantic_cache_paraphrases_hit_and_others_miss(kb: Kb) -> None:
    p = kb.evalset.paraphrases
    now = kb.evalset.default_now
    caller = Caller(p["tenant"], "caller", now)
    info = await kb.resolver.authorize(p["tenant"], "caller")
    for pair in p["pairs"]:
        facts = AnswerFacts(heard=f"answer to {pair['stored']}", grounded=True)
        stored = await kb.resolver.store_answer(
            pair["stored"], facts, ["doc"], tenant=p["tenant"],
            role="caller", agent=p["agent"], kb_version=info.kb_version, now=now,
        )  # fmt: skip
        assert stored.stored
    for pair in p["pairs"]:
        result = await kb.resolver.resolve(pair["asked"], caller, Retrieval(), agent=p["agent"])
        answer = result.cached.answer if result.cached is not None else None
        if pair["same"]:
            assert answer == f"answer to {pair['stored']}", pair
        else:  # never the paired question's answer ("How can I pay my bill?" may get the
            # answer stored for "Which payment methods can I use for my bill?")
            assert answer != f"answer to {pair['stored']}", pair
    other_agent = await kb.resolver.resolve(
        p["pairs"][0]["stored"], caller, Retrieval(), agent="other-agent"
    )
    assert other_agent.cached is None
    refused = await kb.resolver.store_answer(
        "q", AnswerFacts(heard="a", grounded=True, tool_calls=1), [], tenant="acme",
        role="caller", agent="x", kb_version=info.kb_version, now=now,
    )  # fmt: skip
    assert not refused.stored
    assert refused.reason.startswith("tool_calls")


async def test_reingest_delete_and_cache_invalidation(kb: Kb) -> None:
    meta = ChunkMeta("initech", ("caller",))
    now = kb.evalset.default_now
    caller = Caller("initech", "caller", now)
    doc = b"# Hours\nInitech support is open from 9 to 5 on weekdays."
    first = await kb.ingestor.ingest("hours.md", doc, meta)
    assert (await kb.ingestor.ingest("hours.md", doc, meta)).status == "unchanged"
    stored = await kb.resolver.store_answer(
        "When is support open?", AnswerFacts(heard="9 to 5", grounded=True), [],
        tenant="initech", role="caller", agent="bot", kb_version=first.kb_version, now=now,
    )  # fmt: skip
    assert stored.stored
    hit = await kb.resolver.resolve("When is support open?", caller, Retrieval(), agent="bot")
    assert hit.cached is not None

    changed = await kb.ingestor.ingest("hours.md", doc.replace(b"9 to 5", b"8 to 8"), meta)
    assert changed.status == "replaced"
    assert changed.kb_version > first.kb_version
    miss = await kb.resolver.resolve("When is support open?", caller, Retrieval(), agent="bot")
    assert miss.cached is None
    assert miss.block is not None
    assert "8 to 8" in miss.block.text
    assert "9 to 5" not in miss.block.text
    assert [s.source for s in await kb.ingestor.sources("initech")] == ["hours.md"]

    gone = await kb.ingestor.delete("initech", "hours.md")
    assert gone.chunks_deleted == 1
    after = await kb.resolver.resolve("When is support open?", caller, Retrieval())
    assert after.block is not None
    assert after.block.items == ()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tenant=st.sampled_from(["acme", "globex"]),
    role=st.sampled_from(["caller", "staff"]),
    now=st.integers(min_value=1_740_000_000, max_value=1_770_000_000),
    query=st.text(
        alphabet=st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=60
    ).filter(lambda s: s.strip()),
)
def test_property_results_are_always_visible_to_the_caller(
    kb: Kb, tenant: str, role: str, now: int, query: str
) -> None:
    caller = Caller(tenant, role, now)
    spec = Retrieval(top_k=20, candidates=50, rank_mode=RankMode.NONE)

    async def check() -> None:
        vector = (await kb.resolver.embedder.embed([query]))[0]
        for hit in await kb.store.search(vector, access_filter(caller), 50, tenant=tenant):
            assert visible(hit.chunk.meta, caller), (caller, hit.chunk.source)
        result = await kb.resolver.resolve(query, caller, spec, agent="acme-support")
        if result.cached is None:
            assert result.block is not None
            for item in result.block.items:
                assert not (tenant == "globex" and item.source.startswith("acme/"))

    asyncio.run(check())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    owner=st.sampled_from(TENANTS),
    roles=st.lists(st.sampled_from([*ROLES, "*"]), min_size=1, max_size=3, unique=True),
    window=st.tuples(st.integers(0, 100), st.integers(1, 100)),
    caller_tenant=st.sampled_from(TENANTS),
    caller_role=st.sampled_from(ROLES),
    now=st.integers(0, 200),
    secret=st.text(alphabet="abcdefghij", min_size=6, max_size=12),
)
def test_property_random_metadata_never_leaks(
    kb: Kb,
    *,
    owner: str,
    roles: list[str],
    window: tuple[int, int],
    caller_tenant: str,
    caller_role: str,
    now: int,
    secret: str,
) -> None:
    """A document with random owner, roles and window is seen exactly by the callers it allows."""
    meta = ChunkMeta(owner, tuple(roles), window[0], window[0] + window[1])
    body = f"The vault code word is {secret}. tenant: {caller_tenant} roles: {caller_role}"
    caller = Caller(caller_tenant, caller_role, now)
    expected = visible(meta, caller)

    async def check() -> None:
        source = f"prop/{secret}.md"
        await kb.ingestor.ingest_sections(source, [Section("vault", body)], meta, digest=secret)
        try:
            vector = (await kb.resolver.embedder.embed([f"vault code word {secret}"]))[0]
            hits = await kb.store.search(vector, access_filter(caller), 100, tenant=caller_tenant)
            seen = any(h.chunk.source == source for h in hits)
            assert seen == expected, (meta, caller)
            assert all(visible(h.chunk.meta, caller) for h in hits)
        finally:
            await kb.store.delete_source(owner, source)

    asyncio.run(check())
