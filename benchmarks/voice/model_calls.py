"""``make bench-voice-calls-models``: how many concurrent calls one process carries when the
answers need the models — the gateway with Whisper, the context service's MiniLM and Milvus Lite,
SmolLM2 and Piper all in one process (``benchmarks.voice.inproc``), the semantic cache off so
no call answers from another's stored reply.

Per level (N calls at once, three questions each, in real time, a fresh process per level):
caller-measured voice-to-voice p50/p95, turns answered, the process's CPU (% of one core, ms per
call-second) and memory (RSS growth per call), and reply frames that reached a caller more than
60 ms after the one before (the first sign of a dropped frame; those during a stall of the
callers' own loop are counted apart). Where the answers came from (knowledge, LLM, ...) is read
from the gateway's turn records. Writes ``benchmarks/results/voice-calls-models.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.voice.__main__ import one_process
from benchmarks.voice.concurrency import caller_audio, level, read_rows
from benchmarks.voice.conversation import cpu_flags, cpu_model

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "voice-calls-models.json"
LEVELS = (1, 2, 3, 4)


async def run(levels: tuple[int, ...]) -> dict[str, Any]:
    os.environ["CONTEXT_CACHE_ENABLED"] = "false"  # the server inherits it: every turn resolved
    report: dict[str, Any] = {
        "benchmark": "voice-calls-models",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_model(), "flags": cpu_flags(), "cpus": os.cpu_count()},
        "levels": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-model-calls-") as tmp:
        work = Path(tmp)
        turns = await caller_audio(work)
        for n in levels:
            run_dir = work / f"calls-{n}"
            run_dir.mkdir()
            async with one_process(run_dir) as target:
                row = await level(target.url, target.secret, target.pid, turns, n)
                rows = await turn_rows(run_dir / "inproc-turns.jsonl", row["turns_answered"])
            sources: dict[str, int] = {}
            for r in rows:
                sources[r.get("reply_source", "?")] = sources.get(r.get("reply_source", "?"), 0) + 1
            row["reply_sources"] = sources
            report["levels"].append(row)
            print(_line(row), flush=True)
    return report


async def turn_rows(path: Path, answered: int, within_s: float = 10.0) -> list[dict[str, Any]]:
    """The gateway's records of the callers' turns (a record is written after its call ends)."""
    deadline = time.monotonic() + within_s
    while True:
        rows = [r for r in read_rows(path) if r["user_text"]]
        if len(rows) >= answered or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


def _line(row: dict[str, Any]) -> str:
    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (
        f"{row['calls']:>3} calls: answered {row['turns_answered']}/{row['turns']}, failed "
        f"{row['failed_calls']}, v2v p50/p95 {ms(row['v2v_p50_ms'])}/{ms(row['v2v_p95_ms'])} ms, "
        f"CPU {row['gateway_cpu_pct_of_one_core']:.0f}% of a core "
        f"({row['gateway_cpu_ms_per_call_s']:.0f} ms/s per call), RSS "
        f"{row['gateway_rss_mb_before']:.0f}->{row['gateway_rss_mb_peak']:.0f} MB "
        f"({row['rss_mb_per_call']:.1f} MB/call), late frames at caller "
        f"{row['late_reply_frames_at_caller']} ({row['late_frames_callers_stalled']} in the "
        f"callers' stalls), sources {row['reply_sources']}, load {row['load_avg_1m']:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    report = asyncio.run(run(levels))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"machine: {report['machine']['cpu']} ({report['machine']['cpus']} cpus); "
          f"written: {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
