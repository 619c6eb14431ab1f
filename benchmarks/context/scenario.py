"""One measured scenario of the context benchmark, run in a fresh process by ``__main__``."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trunkline.agents import RankMode, Retrieval
from trunkline.context import cache_eval, evaluation
from trunkline.context.backends.embedder import Embedder, MiniLMEmbedder, Vectors
from trunkline.context.backends.guarded import CallPolicy
from trunkline.context.backends.milvus import (
    IndexType,
    MilvusAnswerCache,
    MilvusChunkStore,
    MilvusDatabase,
)
from trunkline.context.backends.mirrored_cache import MirroredAnswerCache
from trunkline.context.backends.tenant_layout import TenantLayout
from trunkline.context.core.cache_policy import CacheScope
from trunkline.context.core.chunking import Section
from trunkline.context.core.types import Caller, ChunkMeta, StageReport
from trunkline.context.ingest.ingestor import Document, Ingestor
from trunkline.context.resolver import Resolver

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "context"
CACHE_SET = DATA / "cache_pairs.yaml"
THRESHOLDS = (0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.82, 0.85, 0.9)
WORDS = (
    "account", "order", "delivery", "warranty", "invoice", "contract", "meter", "tariff",
    "ticket", "device", "network", "outage", "subscription", "upgrade", "installation",
    "appointment", "technician", "balance", "statement", "discount", "voucher", "password",
    "login", "portal", "address", "transfer", "cancellation", "renewal", "insurance", "claim",
    "repair", "parcel",
)  # fmt: skip


def filler(rng: random.Random, n: int) -> str:
    sentences = []
    for _ in range(n):
        words = rng.sample(WORDS, 6)
        sentences.append(
            f"The {words[0]} {words[1]} policy covers {words[2]} and {words[3]} for "
            f"{rng.randint(1, 90)} days, except {words[4]} {words[5]} cases."
        )
    return " ".join(sentences)


class RecycledEmbedder(Embedder):
    """Filler vectors drawn from a pool of real MiniLM filler embeddings plus a little noise.

    For sizes whose real embedding would not fit the time box (100k chunks is ~17 min of
    embedding on 2 busy cores): the index holds as many distinct vectors, so search latency
    is measured at full scale, but the ingest throughput of such a run is not a real figure.
    """

    def __init__(self, pool: Vectors, seed: int = 7) -> None:
        super().__init__()
        self._pool = pool
        self._rng = np.random.default_rng(seed)

    async def _impl(self, texts: list[str]) -> Vectors:
        picks = self._pool[self._rng.integers(0, len(self._pool), len(texts))]
        noisy = picks + self._rng.normal(0, 0.02, picks.shape).astype(np.float32)
        out: Vectors = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(slots=True)
class Timed:
    """Resolve durations and their stages' durations."""

    totals: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)

    def add(self, total_ms: float, stages: Sequence[StageReport]) -> None:
        self.totals.append(total_ms)
        for stage in stages:
            self.stages.setdefault(stage.name, []).append(stage.duration_ms)

    def total(self) -> dict[str, float]:
        return summary(self.totals)

    def by_stage(self) -> dict[str, dict[str, float]]:
        return {name: summary(v) for name, v in self.stages.items()}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95)} if values else {}


@dataclass(frozen=True, slots=True)
class Scenario:
    size: int
    index: IndexType = "FLAT"
    layout: TenantLayout = "partition"
    repeats: int = 5
    batch: int = 20
    recycled: bool = False
    cached_answers: int = 1000


async def run(sc: Scenario) -> dict[str, Any]:  # noqa: PLR0915 - one scenario, top to bottom
    size, index, layout, repeats, batch = sc.size, sc.index, sc.layout, sc.repeats, sc.batch
    recycled, filler_answers = sc.recycled, sc.cached_answers
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="bench-context-"))
    db = MilvusDatabase(str(work / "kb.db"), index_type=index, layout=layout)
    # Bulk embedding (the filler pool, ingest) on a busy machine takes longer than a service's
    # per-call deadline.
    embedder = MiniLMEmbedder(threads=2, batch_size=64, policy=CallPolicy(timeout_s=900.0))
    # The timed Resolves embed as the service does (its default settings: one thread, a short
    # query inline) and look the cache up through its in-process mirror; the durable-only
    # lookup (Milvus search) is timed beside it on the same questions.
    query_embedder = MiniLMEmbedder(policy=CallPolicy(timeout_s=900.0))
    store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
    mirrored = MirroredAnswerCache(cache)
    ingestor = Ingestor(embedder, store, cache)
    filler_ingestor = ingestor
    recycler = None
    if recycled:
        pool = await embedder.embed([filler(rng, 3) for _ in range(2000)])
        recycler = RecycledEmbedder(pool)
        filler_ingestor = Ingestor(recycler, store, cache)
    tenants = ["acme", "globex"] + [f"filler{i}" for i in range(38)]
    per_doc = 50

    def document(d: int, tenant: str) -> Document:
        sections = tuple(Section(f"topic {d}-{k}", filler(rng, 3)) for k in range(per_doc))
        return Document(
            f"filler/{d}.md", ChunkMeta(tenant, ("*",)), sections=sections, digest=str(d)
        )

    # Batched: one ingest call per tenant per `batch` documents (one flush per collection).
    by_tenant: dict[str, list[int]] = {}
    for d in range(size // per_doc):
        by_tenant.setdefault(tenants[d % len(tenants)], []).append(d)
    start = time.perf_counter()
    for tenant, ids in by_tenant.items():
        for i in range(0, len(ids), batch):
            await filler_ingestor.ingest_many([document(d, tenant) for d in ids[i : i + batch]])
    ingest_s = time.perf_counter() - start
    # Batched against one document per call, alternated on equal fresh samples (machine noise
    # hits both alike): the embedding cost is the same, the difference is the writes/flushes.
    spent = {"batched": 0.0, "per_document": 0.0}
    sample, rounds, next_id = 6, 2, size
    for _ in range(rounds):
        for how in spent:
            docs = [document(next_id + k, "compare") for k in range(sample)]
            next_id += sample
            start = time.perf_counter()
            if how == "batched":
                await ingestor.ingest_many(docs)
            else:
                for one in docs:
                    await ingestor.ingest_many([one])
            spent[how] += time.perf_counter() - start
    compared = {how: rounds * sample * per_doc / t for how, t in spent.items()}
    evalset = evaluation.load(DATA)
    await evaluation.ingest_all(evalset, ingestor)
    resolver = Resolver(query_embedder, store, mirrored)
    durable_resolver = Resolver(query_embedder, store, cache)
    # The cache's labelled set (two more tenants), stored as grounded answers.
    cset = cache_eval.load(CACHE_SET)
    cache_ids = await cache_eval.store_entries(cset, resolver, now=evalset.default_now)
    # Filler cached answers in every tenant: in the labelled tenants' own scope (the lookup
    # screens them with the labelled entries), elsewhere under the agent of the timed Resolves
    # below, which search them and miss, as a real turn's lookup does before the five stages.
    agent = "acme-support"
    answer_vectors = await (recycler or embedder).embed(
        [filler(rng, 1) for _ in range(filler_answers)]
    )
    scoped = [*((t, cset.agent_key(t)) for t in cset.agents), *((t, agent) for t in tenants)]
    for n, vector in enumerate(answer_vectors):
        tenant, owner = scoped[n % len(scoped)]
        info = await resolver.authorize(tenant, "caller")
        await cache.store(
            CacheScope(tenant, owner, "caller", info.kb_version),
            query=f"filler question {n}", vector=vector, answer="filler", citations=[],
            stored_at=evalset.default_now, expires_at=evalset.default_now + 10**6,
        )  # fmt: skip

    quality: dict[str, dict[str, float]] = {}
    timings: dict[str, list[float]] = {}
    totals: list[float] = []
    for mode in (RankMode.NONE, RankMode.EMBEDDED):
        spec = Retrieval(top_k=5, rank_mode=mode)
        rr: list[float] = []
        wrong_tenant = 0
        for _ in range(repeats if mode == RankMode.EMBEDDED else 1):
            for q in evalset.questions:
                t0 = time.perf_counter()
                result = await resolver.resolve(q.query, q.caller, spec, agent=agent)
                totals.append(
                    (time.perf_counter() - t0) * 1000
                ) if mode == RankMode.EMBEDDED else None
                for stage in result.stages:
                    timings.setdefault(stage.name, []).append(stage.duration_ms)
                assert result.block is not None
                wrong_tenant += sum(
                    1
                    for i in result.block.items
                    if i.source.startswith("acme/") != (q.tenant == "acme")
                    and i.source.startswith(("acme/", "globex/"))
                )
                if q.expect_source and len(rr) < sum(
                    1 for x in evalset.questions if x.expect_source
                ):
                    rr.append(evaluation.reciprocal_rank(q, result.block.items, 5))
        quality[mode.value] = {
            "recall_at_5": sum(r > 0 for r in rr) / len(rr),
            "mrr": sum(rr) / len(rr),
            "wrong_tenant_results": wrong_tenant,
        }

    outcomes = await cache_eval.ask(cset, resolver, cache_ids, now=evalset.default_now)
    labelled = cache_eval.score(cset, outcomes)
    sweep = await cache_eval.sweep(cset, resolver, cache_ids, THRESHOLDS, now=evalset.default_now)
    paraphrases = [p for p in cset.questions if p.same]
    hits: dict[str, Timed] = {"mirror": Timed(), "durable": Timed()}
    for _ in range(4 * repeats):  # hits are cheap: enough samples for a stable p95
        for p in paraphrases:
            for how, r in (("mirror", resolver), ("durable", durable_resolver)):  # alternated
                t0 = time.perf_counter()
                result = await r.resolve(
                    p.asked, Caller(p.tenant, p.role, evalset.default_now), Retrieval(),
                    agent=cset.agent_key(p.tenant),
                )  # fmt: skip
                if result.cached is not None:
                    hits[how].add((time.perf_counter() - t0) * 1000, result.stages)
    await mirrored.aclose()
    embedder.close()
    query_embedder.close()
    db.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "chunks": size,
        "index": index,
        "layout": layout,
        "filler_cached_answers": filler_answers,
        "ingest_chunks_per_s": size / ingest_s,
        "ingest_batch_documents": batch,
        "filler_vectors": "recycled (ingest rate not real)" if recycled else "real",
        "ingest_compare_chunks_per_s": compared,
        "resolve_ms": {"p50": pct(totals, 0.5), "p95": pct(totals, 0.95)},
        "stage_ms": {k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for k, v in timings.items()},
        "cache_hit_ms": hits["mirror"].total(),
        "cache_hit_stage_ms": hits["mirror"].by_stage(),
        "cache_hits_timed": len(hits["mirror"].totals),
        "cache_hit_durable_ms": hits["durable"].total(),
        "cache_hit_durable_stage_ms": hits["durable"].by_stage(),
        "cache_lookup": "in-process mirror of Milvus (durable: Milvus search, timed beside it)",
        "cache_threshold": resolver.cache_settings.rule.threshold,
        "cache_labelled": labelled.as_dict(),
        "cache_sweep": sweep,
        "quality": quality,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "resolves_timed": len(totals),
        "stdev_ms": statistics.pstdev(totals),
    }


def run_in_child(sc: Scenario) -> dict[str, Any]:
    """One run in a fresh process (its own peak RSS, no state left from another run)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_run_sync, sc).result()


def _run_sync(sc: Scenario) -> dict[str, Any]:
    return asyncio.run(run(sc))
