"""Pure parts of ``make bench-peers``: per-class percentiles, Trunkline/peer ratios, the table.

No I/O and no clocks: the runner hands in each system's caller-measured turns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trunkline.cli.caller.latency import percentile
from trunkline.evaluation.wer import WerCount, corpus_wer, wer

CLASSES = ("short", "long", "off_topic", "goodbye")
TARGET_RATIO = 0.5  # Trunkline p50 and p95 <= 0.5x the peer's best configuration


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn as the caller measured it."""

    kind: str  # utterance class: short | long | off_topic | goodbye
    v2v_ms: float | None  # None: no reply
    barge_in_stop_ms: float | None = None


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    vals = list(values)
    return {"p50": percentile(vals, 50), "p95": percentile(vals, 95), "n": len(vals)}


def summarize(turns: Iterable[Turn]) -> dict[str, Any]:
    """Voice-to-voice p50/p95 per class and over all turns, barge-in stop, unanswered turns."""
    items = list(turns)
    by_class: dict[str, list[float]] = {}
    for t in items:
        if t.v2v_ms is not None:
            by_class.setdefault(t.kind, []).append(t.v2v_ms)
    answered = [t.v2v_ms for t in items if t.v2v_ms is not None]
    barge = [t.barge_in_stop_ms for t in items if t.barge_in_stop_ms is not None]
    return {
        "v2v_by_class": {k: stats(v) for k, v in by_class.items()},
        "v2v_all": stats(answered),
        "barge_in_stop": stats(barge),
        "turns": len(items),
        "unanswered": len(items) - len(answered),
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs; None when either is missing or theirs is not positive."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def ratios(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, float | None]:
    """Trunkline/peer for p50 and p95 over all turns."""
    a, b = ours["v2v_all"], theirs["v2v_all"]
    return {"p50": ratio(a["p50"], b["p50"]), "p95": ratio(a["p95"], b["p95"])}


def caller_wer(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Corpus WER over (what the caller said, what the system heard) pairs."""
    counts: list[WerCount] = [wer(said, heard) for said, heard in pairs]
    return corpus_wer(counts)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(systems: Mapping[str, Mapping[str, Any]], ours: str) -> str:
    """Rows: utterance classes, all, barge-in, WER, ratio to ``ours``; columns: systems."""
    names = list(systems)
    width = max(24, *(len(n) + 2 for n in names))
    head = f"{'v2v ms p50/p95 (n)':<20}" + "".join(f"{n:>{width}}" for n in names)
    lines = [head]
    for kind in (*CLASSES, "all"):
        cells = []
        for name in names:
            s = systems[name]["v2v_all" if kind == "all" else "v2v_by_class"]
            s = s if kind == "all" else s.get(kind, {})
            cells.append(f"{_ms(s.get('p50'))}/{_ms(s.get('p95'))} ({s.get('n', 0)})")
        lines.append(f"{kind:<20}" + "".join(f"{c:>{width}}" for c in cells))
    cells = []
    for name in names:
        b = systems[name]["barge_in_stop"]
        cells.append(f"{_ms(b['p50'])}/{_ms(b['p95'])} ({b['n']})")
    lines.append(f"{'barge-in stop':<20}" + "".join(f"{c:>{width}}" for c in cells))
    cells = []
    for name in names:
        w = systems[name].get("caller_wer")
        cells.append("-" if w is None else f"{w:.1%}")
    lines.append(f"{'caller-turn WER':<20}" + "".join(f"{c:>{width}}" for c in cells))
    cells = [f"{systems[n]['unanswered']}/{systems[n]['turns']}" for n in names]
    lines.append(f"{'unanswered':<20}" + "".join(f"{c:>{width}}" for c in cells))
    cells = []
    for name in names:
        if name == ours:
            cells.append("")
            continue
        r = ratios(systems[ours], systems[name])
        cells.append(f"{_x(r['p50'])} / {_x(r['p95'])}")
    lines.append(f"{ours + '/this p50/p95':<20}"[:20] + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)
