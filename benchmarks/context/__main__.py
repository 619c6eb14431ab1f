"""``make bench-context``: ingest throughput, Resolve latency per stage, cache, recall, memory.

``python -m benchmarks.context [--chunks 10000 100000]`` prints a table per size and writes
``benchmarks/results/context.json``. The labelled set (tests/data/context) is ingested on top of
synthetic filler chunks spread over many tenants (a quarter of them in the labelled tenants).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trunkline.agents import RankMode, Retrieval
from trunkline.context import evaluation
from trunkline.context.backends.embedder import Embedder, MiniLMEmbedder, Vectors
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.core.cache_policy import TurnFacts
from trunkline.context.core.chunking import Section
from trunkline.context.core.types import Caller, ChunkMeta
from trunkline.context.ingest.ingestor import Document, Ingestor
from trunkline.context.resolver import Resolver

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "context"
RESULTS = ROOT / "benchmarks" / "results" / "context.json"
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


async def run(  # noqa: PLR0915 - one measured scenario, read top to bottom
    size: int, index: str, repeats: int, batch: int, recycled: bool
) -> dict[str, Any]:
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="bench-context-"))
    db = MilvusDatabase(str(work / "kb.db"), index_type=index)  # type: ignore[arg-type]
    embedder = MiniLMEmbedder(threads=2, batch_size=64)
    store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
    ingestor = Ingestor(embedder, store, cache)
    filler_ingestor = ingestor
    if recycled:
        pool = await embedder.embed([filler(rng, 3) for _ in range(2000)])
        filler_ingestor = Ingestor(RecycledEmbedder(pool), store, cache)
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
    sample, rounds, next_id = 10, 3, size
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
    resolver = Resolver(embedder, store, cache)

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
                result = await resolver.resolve(q.query, q.caller, spec)
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

    p = evalset.paraphrases
    now = evalset.default_now
    info = await resolver.authorize(p["tenant"], "caller")
    facts = TurnFacts(used_tools=False, caller_specific=False, answer="a")
    for pair in p["pairs"]:
        await resolver.store_answer(
            pair["stored"], "a", [], tenant=p["tenant"], role="caller", agent=p["agent"],
            kb_version=info.kb_version, facts=facts, now=now,
        )  # fmt: skip
    hits = true_hits = 0
    hit_ms: list[float] = []
    for _ in range(repeats):
        for pair in p["pairs"]:
            t0 = time.perf_counter()
            result = await resolver.resolve(
                pair["asked"], Caller(p["tenant"], "caller", now), Retrieval(), agent=p["agent"]
            )
            if result.cached is not None:
                hit_ms.append((time.perf_counter() - t0) * 1000)
                hits += 1
                true_hits += int(pair["same"])
    embedder.close()
    db.close()
    return {
        "chunks": size,
        "index": index,
        "ingest_chunks_per_s": size / ingest_s,
        "ingest_batch_documents": batch,
        "filler_vectors": "recycled (ingest rate not real)" if recycled else "real",
        "ingest_compare_chunks_per_s": compared,
        "resolve_ms": {"p50": pct(totals, 0.5), "p95": pct(totals, 0.95)},
        "stage_ms": {k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for k, v in timings.items()},
        "cache_hit_ms": {"p50": pct(hit_ms, 0.5), "p95": pct(hit_ms, 0.95)} if hit_ms else {},
        "cache_precision": true_hits / hits if hits else 0.0,
        "quality": quality,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "resolves_timed": len(totals),
        "stdev_ms": statistics.pstdev(totals),
    }


def row(name: str, v: dict[str, float]) -> None:
    print(f"{name:22} p50 {v['p50']:7.2f} ms  p95 {v['p95']:7.2f} ms")


def show(r: dict[str, Any]) -> None:
    print(f"\n== {r['chunks']} chunks ({r['index']}, filler vectors {r['filler_vectors']}) ==")
    print(
        f"ingest                 {r['ingest_chunks_per_s']:8.1f} chunks/s "
        f"({r['ingest_batch_documents']} docs per call)\n"
        f"  same sample, alternated: batched {r['ingest_compare_chunks_per_s']['batched']:.1f}"
        f" vs one doc per call {r['ingest_compare_chunks_per_s']['per_document']:.1f} chunks/s"
    )
    row("resolve total", r["resolve_ms"])
    for name, v in r["stage_ms"].items():
        row(f"  {name}", v)
    if r["cache_hit_ms"]:
        row("cache hit", r["cache_hit_ms"])
    print(f"cache precision        {r['cache_precision']:.2f}")
    for mode, q in r["quality"].items():
        wrong = q["wrong_tenant_results"]
        print(
            f"{mode:10} recall@5 {q['recall_at_5']:.2f}  MRR {q['mrr']:.3f}  wrong-tenant {wrong}"
        )
    print(f"peak RSS               {r['peak_rss_mb']:.0f} MB")


def merged(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier runs of other (chunks, index) pairs kept, this run's replacing the same pairs."""
    new = {(r["chunks"], r["index"]) for r in results}
    old: list[dict[str, Any]] = []
    if RESULTS.exists():
        try:
            old = json.loads(RESULTS.read_text()).get("runs", [])
        except (ValueError, AttributeError):
            old = []
    kept = [r for r in old if (r.get("chunks"), r.get("index")) not in new]
    return sorted([*kept, *results], key=lambda r: (r["chunks"], r["index"]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.context")
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--index", choices=["FLAT", "HNSW"], default="FLAT")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20, help="documents per ingest call")
    parser.add_argument(
        "--recycled-vectors",
        action="store_true",
        help="filler chunks reuse a pool of real embeddings (search at scale, no real ingest)",
    )
    args = parser.parse_args()
    results = []
    for size in args.chunks:
        result = asyncio.run(run(size, args.index, args.repeats, args.batch, args.recycled_vectors))
        show(result)
        results.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "context", "runs": merged(results)}, indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
