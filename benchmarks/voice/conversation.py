"""``make bench-voice-long``: a long call (13 turns: short questions, 5-8 s utterances, an
off-topic turn, a phone number read out, a goodbye) through ONE gateway process
(:mod:`benchmarks.voice.inproc`, the real models), made twice in one run: on a quiet machine and
with a CPU hog spinning on one core; ``--distributed`` (``make bench-voice-long-stack``): through
the full stack instead (``trunkline stack up``: every service its own process, gRPC, NATS,
Redis), stages from its turn events.
Each run starts a fresh process (stack) with an empty semantic cache.

Reported per utterance class and per turn index: caller-measured voice-to-voice p50/p95, the
gateway's STT time, and the cost of the grounding guard and of the reply decision (intent) per
turn. Writes ``benchmarks/results/voice-long.json`` (``voice-long-stack.json``) and the same
name ``.svg`` (latency by turn index; an SVG drawn here, matplotlib is not installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from benchmarks.voice.__main__ import ROOT, Target, distributed_stack, one_call, one_process
from trunkline.cli.caller import CallerTurn, CallResult, PreparedTurn, prepare_script
from trunkline.cli.caller.latency import percentile
from trunkline.cli.turns import TurnFeed
from trunkline.gateway.sink import STAGE_NAMES

RESULTS = ROOT / "benchmarks" / "results" / "voice-long.json"
SCRIPT: tuple[tuple[str, str], ...] = (
    ("short", "Hi, when are you open on Saturday?"),
    ("short", "How much does teeth whitening cost?"),
    ("long", "Hi, I'm calling because my crown came loose last night and I would like to "
             "book an appointment for this week if you have anything on Thursday."),
    ("short", "Do you take dental insurance?"),
    ("off_topic", "What do you think about the football game last night?"),
    ("short", "Where is the practice?"),
    ("long", "My daughter has a cleaning booked for next Tuesday, but she has a school trip "
             "that day, so I need to move it to the following Monday afternoon if I can."),
    ("short", "Is there parking near the office?"),
    ("short", "Can I pay by credit card?"),
    # ends in a number of no known length (a phone number, 7 digits): the turn machine holds
    # the end for a next group (turn_taking.number_hold_ms): this class is what that hold costs
    ("number", "You can call me back on five five five, zero one three two."),
    ("long", "I had a filling done last month and since then the tooth hurts when I drink "
             "something cold, is that normal or should I come back in to have it checked?"),
    ("short", "How much is an emergency visit?"),
    ("goodbye", "Great, thank you. Goodbye!"),
)  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


async def caller_audio(work: Path) -> list[PreparedTurn]:
    """The caller's lines spoken by Piper (the agent's own voice, a little faster), as WAVs."""
    from trunkline.tts.backends import StreamSettings  # noqa: PLC0415
    from trunkline.tts.backends.base import SynthesisOptions  # noqa: PLC0415
    from trunkline.tts.backends.piper import PiperSynthesizer  # noqa: PLC0415

    tts = PiperSynthesizer(options=SynthesisOptions(first_audio_timeout_s=60.0))  # before the run
    await tts.start()
    turns = []
    try:
        for index, (_, text) in enumerate(SCRIPT):
            settings = StreamSettings(sample_rate=16_000, speaking_rate=1.1)
            pcm = b"".join([c.pcm async for c in tts.synthesize(text, settings)])
            path = work / f"turn-{index}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16_000)
                out.writeframes(pcm)
            turns.append(CallerTurn(text=text, wav=path))
    finally:
        await tts.close()
    return await prepare_script(turns)


def start_hog() -> subprocess.Popen[bytes]:
    """A busy loop pinned to one core (the other stays for the gateway and its models)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(hog.pid, {0})
    return hog


def stats(values: list[float]) -> dict[str, float | int | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def summarize(call: CallResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per class and per turn index: caller-measured v2v; the gateway's own stage times."""
    by_class: dict[str, list[float]] = {}
    by_turn: list[float | None] = []
    for turn in call.turns:
        kind = SCRIPT[turn.index][0] if turn.index < len(SCRIPT) else "?"
        by_turn.append(turn.voice_to_voice_ms)
        if turn.voice_to_voice_ms is not None:
            by_class.setdefault(kind, []).append(turn.voice_to_voice_ms)
    spoken = [r for r in rows if r["user_text"]]
    stage = {
        name: stats([r["stage_s"][name] * 1000 for r in spoken if name in r["stage_s"]])
        for name in ("stt", "guard", "reply_plan", "llm_ttft", "tts_ttfa")
    }
    per_turn_check = [
        (r["stage_s"].get("guard", 0.0) + r["stage_s"].get("reply_plan", 0.0)) * 1000
        for r in spoken
        if "reply_plan" in r["stage_s"]
    ]
    # per turn: where the time went (gateway clock): the reply's readiness after its work began
    # against the endpoint's wait (ready later than the endpoint = the reply was late)
    detail = [
        {
            "turn": i,
            "class": SCRIPT[i][0] if i < len(SCRIPT) else "?",
            "caller_v2v_ms": t.voice_to_voice_ms,
            "gateway_v2v_ms": _ms_or_none(r.get("voice_to_voice_s") if r else None),
            "source": r.get("reply_source") if r else None,
            "stages_ms": {k: round(v * 1000, 1) for k, v in r["stage_s"].items()} if r else {},
        }
        for i, (t, r) in enumerate(zip(call.turns, _align(call, spoken), strict=True))
    ]
    return {
        "turn_detail": detail,
        "v2v_by_class": {k: stats(v) for k, v in by_class.items()},
        "v2v_all": stats([v for v in by_turn if v is not None]),
        "v2v_by_turn": by_turn,
        "stages_ms": stage,
        "guard_plus_intent_ms": stats(per_turn_check),
        "answered": sum(1 for t in call.turns if t.outcome == "answered"),
        "turns": len(call.turns),
        "ended_by": call.ended_by,
    }


def _ms_or_none(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) * 1000, 1)


def _align(call: CallResult, spoken: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The gateway's record of each caller turn, in order (None where the gateway has none)."""
    rows: list[dict[str, Any] | None] = list(spoken[: len(call.turns)])
    return rows + [None] * (len(call.turns) - len(rows))


def svg_plot(runs: dict[str, list[float | None]], path: Path) -> None:
    """Voice-to-voice by turn index, one polyline per run."""
    width, height, pad = 640, 320, 48
    values = [v for series in runs.values() for v in series if v is not None]
    top = max([*values, 1.0]) * 1.1
    turns = max(len(s) for s in runs.values())
    colours = ["#1f77b4", "#d62728", "#2ca02c"]

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + i * (width - 2 * pad) / max(turns - 1, 1)
        return x, height - pad - v / top * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">turn index '
        "(caller turn of the call)</text>",
        f'<text x="12" y="{pad - 12}">voice-to-voice ms (caller-measured)</text>',
    ]
    for tick in range(0, int(top) + 1, max(int(top / 5 / 100) * 100, 100)):
        _, y = xy(0, tick)
        parts.append(f'<text x="{pad - 6}" y="{y + 4}" text-anchor="end">{tick}</text>')
    for i in range(turns):
        x, _ = xy(i, 0)
        kind = SCRIPT[i][0] if i < len(SCRIPT) else ""
        parts.append(f'<text x="{x}" y="{height - pad + 14}" text-anchor="middle">{i + 1}</text>')
        parts.append(
            f'<text x="{x}" y="{height - pad + 26}" text-anchor="middle" font-size="8">{kind}'
            "</text>"
        )
    for n, (name, series) in enumerate(runs.items()):
        colour = colours[n % len(colours)]
        points = [xy(i, v) for i, v in enumerate(series) if v is not None]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}"/>')
        parts.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points
        )
        parts.append(
            f'<text x="{width - pad - 140}" y="{pad + 14 * n}" fill="{colour}">{name}</text>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def table(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [f"{'class':<10}" + "".join(f"{name + ' p50/p95':>22}" for name in runs)]
    kinds = dict.fromkeys(k for k, _ in SCRIPT)
    for kind in [*kinds, "all"]:
        cells = []
        for run in runs.values():
            s = run["v2v_all"] if kind == "all" else run["v2v_by_class"].get(kind, {})
            cells.append(f"{_ms(s.get('p50'))}/{_ms(s.get('p95'))} (n={s.get('n', 0)})")
        lines.append(f"{kind:<10}" + "".join(f"{c:>22}" for c in cells))
    lines.append("")
    lines.append(f"{'turn':<10}" + "".join(f"{name:>22}" for name in runs))
    for i, (kind, _) in enumerate(SCRIPT):
        cells = []
        for run in runs.values():
            series = run["v2v_by_turn"]
            cells.append(_ms(series[i]) if i < len(series) else "-")
        lines.append(f"{f'{i + 1} {kind}':<10}" + "".join(f"{c:>22}" for c in cells))
    lines.append("")
    for name, run in runs.items():
        st = run["stages_ms"]
        lines.append(
            f"{name}: stt p50/p95 {_ms(st['stt']['p50'])}/{_ms(st['stt']['p95'])} ms; "
            f"guard+intent per turn p50/p95 {_ms(run['guard_plus_intent_ms']['p50'], 2)}/"
            f"{_ms(run['guard_plus_intent_ms']['p95'], 2)} ms; answered "
            f"{run['answered']}/{run['turns']}; load {run['load_before']:.1f}->"
            f"{run['load_after']:.1f}"
        )
    cols = ("stt", "context", "llm_first_clause", "tts_ttfa", "reply_ready", "endpointing")
    for name, run in runs.items():
        lines.append(f"{name}, per turn (ms; reply_ready from the work's start):")
        lines.append(
            f"  {'turn':<12}{'source':>10}" + "".join(f"{c:>17}" for c in cols) + f"{'gw v2v':>8}"
        )
        for d in run["turn_detail"]:
            st = d["stages_ms"]
            label = f"{d['turn'] + 1} {d['class']}"
            lines.append(
                f"  {label:<12}{d['source'] or '-':>10}"
                + "".join(f"{_ms(st.get(c)):>17}" for c in cols)
                + f"{_ms(d['gateway_v2v_ms']):>8}"
            )
    return "\n".join(lines)


async def _run(
    name: str, target: Target, prepared: list[PreparedTurn], report: dict[str, Any]
) -> CallResult:
    hog_proc = start_hog() if name != "quiet" else None
    load_before = os.getloadavg()[0]
    try:
        call = await one_call(target, prepared)
    finally:
        if hog_proc is not None:
            hog_proc.kill()
            hog_proc.wait()
    print(f"  {name}: v2v {[_ms(t.voice_to_voice_ms) for t in call.turns]}", flush=True)
    target.mode.calls.append(call)
    report["runs"][name] = {
        "call_sid": call.call_sid,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "_call": call,
    }
    return call


async def _feed_rows(feed: TurnFeed, call: CallResult) -> list[dict[str, Any]]:
    """The distributed gateway's turn records, from its turn.completed events on NATS."""
    with contextlib.suppress(TimeoutError):  # a turn merged or dropped: use the rest
        await feed.wait_for(call.call_sid, 1 + len(call.turns), timeout_s=10)
    names = {v: k for k, v in STAGE_NAMES.items()}
    rows = []
    for turn in feed.turns(call.call_sid):
        stages = {names.get(k, k): v / 1000 for k, v in turn.stages_ms.items()}
        rows.append({
            "call_id": call.call_sid,
            "user_text": turn.caller,
            "stage_s": stages,
            "voice_to_voice_s": stages.pop("turn.response", None),
            "reply_source": turn.source,
        })  # fmt: skip
    return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The gateway's turn records (none when no turn finished in the gateway)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    by_turn = {name: run["v2v_by_turn"] for name, run in report["runs"].items()}
    svg_plot(by_turn, out.with_suffix(".svg"))


def _ms(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def main_async(out: Path, hog: bool, distributed: bool) -> int:
    report: dict[str, Any] = {
        "benchmark": "voice-long",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_model(), "flags": cpu_flags(), "cpus": os.cpu_count()},
        "stack": "distributed" if distributed else "one process",
        "script": [{"class": k, "text": t} for k, t in SCRIPT],
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-voice-long-") as tmp:
        work = Path(tmp)
        prepared = await caller_audio(work)
        rows: list[dict[str, Any]] = []
        for name in ("quiet", "cpu hog on one core") if hog else ("quiet",):
            # each run in a fresh process (stack) with an empty semantic cache: a later run
            # must not answer from what the earlier one stored
            run_dir = work / name.replace(" ", "-")
            run_dir.mkdir()
            async with contextlib.AsyncExitStack() as stack:
                feed: TurnFeed | None = None
                if distributed:
                    target, _, feed = await stack.enter_async_context(distributed_stack(run_dir))
                else:
                    target = await stack.enter_async_context(one_process(run_dir))
                call = await _run(name, target, prepared, report)
                if feed is not None:
                    rows += await _feed_rows(feed, call)
            if feed is None:
                rows += read_rows(run_dir / "inproc-turns.jsonl")
    for run in report["runs"].values():
        call = run.pop("_call")
        mine = [r for r in rows if r["call_id"] == call.call_sid]
        run.update(summarize(call, mine))
        run["call"] = call.to_dict()
    write(report, out)
    print(f"machine: {report['machine']['cpu']} ({report['machine']['cpus']} cpus), "
          f"flags {' '.join(report['machine']['flags'])}")  # fmt: skip
    print(table(report))
    print(f"written: {out}, {out.with_suffix('.svg')}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-hog", action="store_true", help="the quiet run only")
    parser.add_argument(
        "--distributed", action="store_true", help="through the full stack (trunkline up)"
    )
    args = parser.parse_args()
    return asyncio.run(main_async(args.out, not args.no_hog, args.distributed))


if __name__ == "__main__":
    raise SystemExit(main())
