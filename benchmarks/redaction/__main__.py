"""``make bench-redaction``: precision and recall of the PII detectors per entity type.

Two sets, reported apart: ``tests/data/redaction/*.yaml`` (written with the rules and tuned on,
so its figures are an upper bound) and ``tests/data/redaction/holdout/*.yaml`` (written after
the rules were done and never tuned on: the honest figures). A prediction counts when a finding
of the same entity overlaps the labelled value; a *leak* is a labelled value with any character
left unredacted. Also the time :func:`redact` takes per turn-sized text on this CPU.

Prints a table and writes ``benchmarks/results/redaction.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from trunkline.redaction import redact
from trunkline.redaction.labelled import Report, load_labelled, score

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "redaction"
RESULTS = ROOT / "benchmarks" / "results" / "redaction.json"


def table(name: str, report: Report) -> str:
    head = f"  {'entity':<8} {'gold':>5} {'found':>6} {'prec':>6} {'recall':>7} {'leaks':>6}"
    lines = [
        f"{name}: {report.items} texts, {report.negatives} hard negatives "
        f"({report.negatives_flagged} flagged)",
        head,
    ]
    rows = [*report.per_entity.items(), ("total", report.total)]
    for entity, s in rows:
        gold = s.true_positive + s.false_negative
        found = s.true_positive + s.false_positive
        lines.append(f"  {entity!s:<8} {gold:>5} {found:>6} {s.precision:>6.3f} {s.recall:>7.3f} "
                     f"{s.leaks:>6}")  # fmt: skip
    return "\n".join(lines)


def timing(texts: list[str], rounds: int) -> dict[str, float]:
    per_text = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            redact(text)
            per_text.append((time.perf_counter() - started) * 1000)
    per_text.sort()
    return {
        "texts": len(per_text),
        "p50_ms": round(statistics.median(per_text), 4),
        "p95_ms": round(per_text[int(len(per_text) * 0.95) - 1], 4),
        "mean_chars": round(statistics.mean(len(t) for t in texts), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    tuned_items = load_labelled(DATA)
    holdout_items = load_labelled(DATA / "holdout")
    tuned, holdout = score(tuned_items), score(holdout_items)
    speed = timing([i.text for i in tuned_items + holdout_items], args.rounds)
    print(table("labelled set (tuned on)", tuned))
    print(table("hold-out set (never tuned on)", holdout))
    for miss in holdout.misses:
        print(f"  hold-out: {miss}")
    print(f"redact(): p50 {speed['p50_ms']:.3f} ms, p95 {speed['p95_ms']:.3f} ms per text "
          f"(mean {speed['mean_chars']} chars), {platform.processor() or platform.machine()}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    payload = {
        "tuned": tuned.as_dict(),
        "holdout": holdout.as_dict(),
        "timing": speed,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_1m": round(os.getloadavg()[0], 2),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
