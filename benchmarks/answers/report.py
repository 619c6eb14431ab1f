"""Per-question results into per-strategy figures, a printed table, and the machine they ran on."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.answers.scoring import percentile
from benchmarks.answers.strategies import STRATEGIES


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``rows``: one per question, ``row["strategies"][name]`` as ``__main__`` records it."""
    out: dict[str, dict[str, Any]] = {}
    for name in STRATEGIES:
        results = [row["strategies"][name] for row in rows if name in row["strategies"]]
        if not results:
            continue
        clauses = sum(r["clauses"] for r in results)
        supported = sum(r["supported_clauses"] for r in results)
        firsts = [r["first_ms"] for r in results if r["first_ms"] is not None]
        out[name] = {
            "questions": len(results),
            "correct": sum(r["correct"] for r in results),
            "correct_share": _share(sum(r["correct"] for r in results), len(results)),
            "spoken_clauses": clauses,
            "guard_supported_share": _share(supported, clauses),
            "answers_with_invented_facts": sum(bool(r["invented"]) for r in results),
            "invented_facts": sorted({f for r in results for f in r["invented"]}),
            "silent_answers": len(results) - len(firsts),
            "first_clause_ms": {"p50": percentile(firsts, 0.5), "p95": percentile(firsts, 0.95)},
            "guard_interventions": sum(bool(r.get("held_back")) for r in results),
            "fallbacks": dict(Counter(r["fallback"] for r in results if r.get("fallback"))),
            "sources": dict(Counter(r["source"] for r in results if r.get("source"))),
        }
    return out


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def table(summary: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'strategy':12} {'correct':>9} {'clauses ok':>11} {'invented':>9} "
        f"{'1st clause p50':>15} {'p95':>8} {'silent':>7} {'guard held':>11}"
    )
    lines = [head, "-" * len(head)]
    for name, s in summary.items():
        p50, p95 = s["first_clause_ms"]["p50"], s["first_clause_ms"]["p95"]
        ok = s["guard_supported_share"]
        lines.append(
            f"{name:12} {s['correct']:>4}/{s['questions']:<4} "
            f"{'-' if ok is None else f'{ok:.1%}':>11} "
            f"{s['answers_with_invented_facts']:>9} "
            f"{_ms(p50):>15} {_ms(p95):>8} {s['silent_answers']:>7} "
            f"{s['guard_interventions'] if name in ('guarded_llm', 'spec_policy') else '-':>11}"
        )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def machine() -> dict[str, Any]:
    """The CPU model (from /proc/cpuinfo), its core count and the load average now."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "load_average": list(os.getloadavg())}
