"""``make bench-context``: ingest throughput, Resolve latency per stage, cache, recall, memory.

``python -m benchmarks.context`` runs 10k chunks (real embeddings) and 100k chunks (filler
vectors recycled from a pool of real embeddings: ``scenario.RecycledEmbedder``) in the default
``partition`` tenant layout, prints a table per run and writes ``benchmarks/results/context.json``.
``--layout partition partition_key`` measures both layouts per size and prints them side by side.
The labelled set (tests/data/context) is ingested on top of synthetic filler chunks spread over
40 tenants (a twentieth each in the labelled tenants); each tenant also holds filler cached
answers of another agent, so the timed Resolves pay a real semantic-cache miss lookup.
Cache hits are timed through the service's lookup (the in-process mirror of Milvus) and, on
the same questions alternated, through a Milvus search alone.
Each run is a fresh process: its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

from benchmarks.context.scenario import Scenario, run_in_child
from trunkline.context.backends.milvus import IndexType
from trunkline.context.backends.tenant_layout import LAYOUTS

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "context.json"


def row(name: str, v: dict[str, float]) -> None:
    print(f"{name:22} p50 {v['p50']:7.2f} ms  p95 {v['p95']:7.2f} ms")


def show(r: dict[str, Any]) -> None:
    print(
        f"\n== {r['chunks']} chunks ({r['index']}, tenant layout {r['layout']},"
        f" filler vectors {r['filler_vectors']}) =="
    )
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
        for name, v in r.get("cache_hit_stage_ms", {}).items():
            row(f"  {name}", v)
    if r.get("cache_hit_durable_ms"):
        row("cache hit, Milvus only", r["cache_hit_durable_ms"])
        for name, v in r.get("cache_hit_durable_stage_ms", {}).items():
            row(f"  {name}", v)
    if "cache_labelled" in r:
        cache_table(r)
    for mode, q in r["quality"].items():
        wrong = q["wrong_tenant_results"]
        print(
            f"{mode:10} recall@5 {q['recall_at_5']:.2f}  MRR {q['mrr']:.3f}  wrong-tenant {wrong}"
        )
    print(f"peak RSS               {r['peak_rss_mb']:.0f} MB")


def cache_table(r: dict[str, Any]) -> None:
    """The labelled set's figures, and what each threshold would do with and without key terms."""
    c = r["cache_labelled"]
    print(
        f"cache labelled set     paraphrases hit {c['paraphrase_hits']}/{c['paraphrases']}"
        f" ({100 * c['paraphrase_hit_rate']:.0f}%), false hits {c['false_hits']}"
        f" of {c['near_misses']} near-misses, cross-role {c['cross_role_hits']},"
        f" cross-tenant {c['cross_tenant_hits']} (threshold {r['cache_threshold']:.2f})"
    )
    print(f"  {'kind':12} questions  hits  correct")
    for kind, k in sorted(c["by_kind"].items()):
        print(f"  {kind:12} {k['questions']:9} {k['hits']:5} {k['correct']:8}")
    for wrong in c["wrong"]:
        print(f"  wrong: {wrong}")
    print(f"  {'threshold':>9}  key terms: paraphrase hits / false hits   cosine alone")
    rows = {(s["key_terms"], s["threshold"]): s for s in r["cache_sweep"]}
    for t in sorted({s["threshold"] for s in r["cache_sweep"]}):
        k, alone = rows[(True, t)], rows[(False, t)]
        print(
            f"  {t:9.2f}  {100 * k['paraphrase_hit_rate']:5.0f}% / {k['false_hits']:<3}"
            f"                  {100 * alone['paraphrase_hit_rate']:5.0f}% / {alone['false_hits']}"
        )


def side_by_side(runs: list[dict[str, Any]]) -> None:
    """One column per run of the same size (e.g. the two tenant layouts)."""
    names = [f"{r['layout']}/{r['index']}" for r in runs]
    print(f"\n== {runs[0]['chunks']} chunks side by side ==")
    print(f"{'':24}" + "".join(f"{n:>22}" for n in names))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:24}" + "".join(f"{v:>22}" for v in values))

    line("resolve p50 / p95 ms", [_pair(r["resolve_ms"]) for r in runs])
    for stage in runs[0]["stage_ms"]:
        line(f"  {stage}", [_pair(r["stage_ms"].get(stage, {})) for r in runs])
    line("cache hit p50 / p95 ms", [_pair(r["cache_hit_ms"]) for r in runs])
    line("  Milvus only", [_pair(r.get("cache_hit_durable_ms", {})) for r in runs])
    for mode in runs[0]["quality"]:
        line(
            f"recall@5 / MRR {mode}",
            [
                f"{r['quality'][mode]['recall_at_5']:.2f} / {r['quality'][mode]['mrr']:.3f}"
                for r in runs
            ],
        )
    line(
        "wrong-tenant results",
        [str(sum(q["wrong_tenant_results"] for q in r["quality"].values())) for r in runs],
    )
    line("ingest chunks/s", [f"{r['ingest_chunks_per_s']:.0f}" for r in runs])
    line("peak RSS MB", [f"{r['peak_rss_mb']:.0f}" for r in runs])


def _pair(v: dict[str, float]) -> str:
    return f"{v['p50']:.2f} / {v['p95']:.2f}" if v else "-"


def _key(r: dict[str, Any]) -> tuple[int, str, str]:
    return (int(r.get("chunks", 0)), str(r.get("index", "")), str(r.get("layout", "partition_key")))


def merged(results: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Earlier runs of other (chunks, index, layout) kept, this run's replacing the same ones.

    Runs from before the layout setting existed used the partition-key layout.
    """
    new = {_key(r) for r in results}
    old: list[dict[str, Any]] = []
    if out.exists():
        try:
            old = json.loads(out.read_text()).get("runs", [])
        except (ValueError, AttributeError):
            old = []
    kept = [{"layout": "partition_key", **r} for r in old if _key(r) not in new]
    return sorted([*kept, *results], key=_key)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.context")
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--index", choices=["FLAT", "HNSW"], default="FLAT")
    parser.add_argument(
        "--layout", choices=LAYOUTS, nargs="+", default=["partition"], help="tenant layouts"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20, help="documents per ingest call")
    parser.add_argument(
        "--cached-answers", type=int, default=1000, help="filler cached answers (other agent)"
    )
    parser.add_argument(
        "--recycled-vectors",
        action="store_true",
        help="filler chunks reuse a pool of real embeddings at every size (search at scale,"
        " ingest rate not real)",
    )
    parser.add_argument(
        "--real-vectors-up-to",
        type=int,
        default=20_000,
        help="larger sizes recycle filler vectors (real embedding of 100k chunks: ~20 min)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    results = []
    for size in args.chunks:
        runs = []
        for layout in args.layout:
            result = run_in_child(
                Scenario(
                    size,
                    cast(IndexType, args.index),
                    layout,
                    args.repeats,
                    args.batch,
                    args.recycled_vectors or size > args.real_vectors_up_to,
                    args.cached_answers,
                )
            )
            show(result)
            runs.append(result)
        if len(runs) > 1:
            side_by_side(runs)
        results.extend(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = merged(results, args.out)
    args.out.write_text(json.dumps({"benchmark": "context", "runs": runs}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
