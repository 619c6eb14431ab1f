"""``make bench-voice``: voice-to-voice latency through the distributed stack vs one process.

The same caller turns (synthesized once, spoken in real time over the Twilio media stream by
the simulated caller, a barge-in every few turns) go
1. through the distributed local stack (``trunkline stack up``: gateway, stt, context, llm, tts
   as processes, gRPC between them, NATS events, Redis state, OTLP traces), and
2. through ONE process (:mod:`benchmarks.voice.inproc`): the gateway's web app and call
   session with in-process peers over the same model backends, no gRPC/NATS/Redis.
3. through the same distributed stack as a LiveKit caller (:mod:`benchmarks.voice.livekit_caller`:
   a Python participant in a room of the stack's ``livekit-server``, Opus both ways).
All are up for the whole run; each call is made through each of them in turn, the order
rotating call by call (whatever else loads the machine falls on all alike). Reported:
p50/p95 voice-to-voice (last voiced caller frame sent -> first agent audio frame received,
measured by the caller), the gateway's per-stage timings, the platform overhead
(distributed - in-process), LiveKit beside the Twilio media stream on the same stack and turns,
and barge-in stop latency (caller onset -> agent audio stopped).
Prints a table and writes ``benchmarks/results/voice.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.voice.livekit_caller import Room, livekit_call
from trunkline.bus import Bus
from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    CallResult,
    PreparedTurn,
    SimulatedCaller,
    direct_target,
    prepare_script,
)
from trunkline.cli.caller.latency import percentile
from trunkline.cli.demo import component_url
from trunkline.cli.knowledge import ingest
from trunkline.cli.record import StackRecord, load
from trunkline.cli.tenants import read_tenant
from trunkline.cli.turns import TurnFeed
from trunkline.gateway.livekit_rooms import LiveKitKey
from trunkline.gateway.sink import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
AGENT = "acme-dental"
TENANT = "acme"
RESULTS = ROOT / "benchmarks" / "results" / "voice.json"
TURNS_PER_CALL = 6  # short calls keep the prompt (history) the same size in both modes
BARGE_IN_EVERY = 3  # every third turn barges into the reply before it (8 of 24 turns)
OPTIONS = CallOptions(reply_quiet_ms=1500.0, reply_timeout_s=25.0)
STAGES = ("endpointing", "stt", "context", "prompt_compile", "llm_ttft", "llm_first_clause",
          "tts_ttfa")  # fmt: skip
TARGETS = {"v2v_p50_ms": 450, "v2v_p95_ms": 650, "overhead_p50_ms": 15, "barge_in_p95_ms": 150,
           "livekit_over_twilio_p50_ms": 30}  # fmt: skip

LINES = (
    "Hi, when are you open on Saturday?",
    "How much does teeth whitening cost?",
    "Where is the practice?",
    "Do you take dental insurance?",
    "How much is a check up and cleaning?",
    "Sorry, one more thing. What does a filling cost?",
    "Are you open on Sunday?",
    "What happens if I cancel late?",
    "How much is an emergency visit?",
    "Is there parking near the office?",
    "Can I pay by credit card?",
    "Actually, wait. Which bus stops outside?",
)


def script(turns: int) -> list[CallerTurn]:
    out = []
    for i in range(turns):
        barge = (i + 1) % BARGE_IN_EVERY == 0
        out.append(CallerTurn(text=LINES[i % len(LINES)], barge_in_ms=1500.0 if barge else None))
    return out


@dataclass
class ModeResult:
    calls: list[CallResult] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)  # per answered turn, ms
    dropped: dict[str, int] | None = None  # turns started and thrown away, by reason

    def v2v(self) -> list[float]:
        return [v for c in self.calls for v in c.latencies()]

    def barge(self) -> list[float]:
        return [t.barge_in_stop_ms for c in self.calls for t in c.turns
                if t.barge_in_stop_ms is not None]  # fmt: skip

    def stage(self, name: str) -> list[float]:
        return [s[name] for s in self.stages if name in s]

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float]) -> dict[str, float | int | None]:
            return {"p50": percentile(values, 50), "p95": percentile(values, 95),
                    "n": len(values)}  # fmt: skip

        rows: dict[str, Any] = {name: pct(self.stage(name)) for name in (*STAGES, "v2v_gateway")}
        rows["v2v_caller"] = pct(self.v2v())
        rows["barge_in_stop"] = pct(self.barge())
        answered = sum(1 for c in self.calls for t in c.turns if t.outcome == "answered")
        rows["turns"] = {"answered": answered, "total": sum(len(c.turns) for c in self.calls)}
        if self.dropped is not None:
            rows["dropped_turns"] = self.dropped
        return rows


def _short(event_stages: dict[str, float]) -> dict[str, float]:
    names = {v: k for k, v in STAGE_NAMES.items()} | {"turn.response": "v2v_gateway"}
    return {names[k]: v for k, v in event_stages.items() if k in names}


async def one_call(target: Target, turns: list[PreparedTurn]) -> CallResult:
    if target.room is not None:
        return await livekit_call(target.room, turns, OPTIONS)
    identity = CallIdentity()
    dial = direct_target(
        target.url, identity, tenant=TENANT, agent=AGENT, stream_secret=target.secret
    )
    return await SimulatedCaller(dial, identity, OPTIONS).run(turns)


def stack_cmd(run_dir: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trunkline.cli.main", "stack", *args, "--run-dir", str(run_dir)],
        check=True, env={**os.environ, "TRUNKLINE_STACK_AGENTS_DIR": str(AGENTS)},
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Target:
    """Where a mode's calls go, and how its per-stage timings are collected afterwards."""

    name: str
    url: str
    secret: str
    mode: ModeResult = field(default_factory=ModeResult)
    pid: int = 0  # the one-process server's (0: a distributed stack)
    room: Room | None = None  # a LiveKit caller's (None: the Twilio media stream)


def livekit_target(record: StackRecord) -> Target | None:
    """LiveKit callers into the stack's own livekit-server (None: the stack runs none)."""
    gateway, server = record.get("gateway"), record.get("livekit")
    if gateway is None or server is None:
        return None
    env = gateway.env
    key = LiveKitKey(
        env["GATEWAY_LIVEKIT_API_KEY"], env["GATEWAY_LIVEKIT_API_SECRET"], frozenset({TENANT})
    )
    return Target("livekit", server.url, "", room=Room(server.url, key, TENANT, AGENT))


@contextlib.asynccontextmanager
async def distributed_stack(work: Path) -> AsyncIterator[tuple[Target, StackRecord, TurnFeed]]:
    run_dir = work / "stack"
    stack_cmd(run_dir, "up")
    try:
        record: StackRecord | None = load(run_dir)
        assert record is not None
        await ingest(component_url(record, "context"), TENANT, AGENTS / AGENT / "knowledge")
        secret = read_tenant(Path(record.tenants_file), TENANT).stream_secret
        bus = await Bus.connect(component_url(record, "nats"), name="bench-voice")
        feed = TurnFeed(bus, TENANT)
        await feed.start()
        try:
            yield Target("distributed", record.media_url, secret), record, feed
        finally:
            await feed.stop()
            await bus.close()
    finally:
        stack_cmd(run_dir, "down")


async def collect_distributed(target: Target, feed: TurnFeed) -> None:
    for call in target.mode.calls:
        expected = 1 + len(call.turns)
        with contextlib.suppress(TimeoutError):  # a turn merged or dropped: use the rest
            await feed.wait_for(call.call_sid, expected, timeout_s=10)
        for turn in feed.turns(call.call_sid):
            if turn.caller:
                target.mode.stages.append(_short(turn.stages_ms))


@contextlib.asynccontextmanager
async def one_process(work: Path) -> AsyncIterator[Target]:
    turns_out = work / "inproc-turns.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.voice.inproc", "--agents", str(AGENTS),
        "--db", str(work / "inproc.db"), "--turns-out", str(turns_out),
        stdout=asyncio.subprocess.PIPE, stderr=(work / "inproc.log").open("wb"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"in-process server failed; see {work / 'inproc.log'}")
        target = Target("one process", f"ws://127.0.0.1:{line[1]}/twilio/stream", line[2])
        target.pid = proc.pid
        yield target
    finally:
        proc.terminate()
        await proc.wait()
    rows = turns_out.read_text().splitlines() if turns_out.exists() else []  # none finished
    for raw in rows:
        row = json.loads(raw)
        if row["user_text"]:
            stages = {k: v * 1000 for k, v in row["stage_s"].items()}
            if row["voice_to_voice_s"] is not None:
                stages["v2v_gateway"] = row["voice_to_voice_s"] * 1000
            target.mode.stages.append(stages)


def dropped_turns(spans: Path) -> dict[str, int]:
    """Turns whose work the gateway started and threw away, by reason, from the distributed
    stack's spans ('speech resumed': a speculative start the caller talked through)."""
    counts: dict[str, int] = {}
    if not spans.exists():
        return counts
    for line in spans.read_text().splitlines():
        span = json.loads(line)
        reason = span["attributes"].get("turn.dropped")
        if span["name"] == "turn" and span["service_name"] == "gateway" and reason:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


async def interleaved(
    work: Path, turns: int, livekit: bool
) -> tuple[ModeResult, ModeResult, ModeResult | None]:
    """Every mode up at once (an idle one takes no CPU); each call is made to each, one right
    after the other, the order rotating call by call, so that whatever else the machine does
    during the run falls on every mode alike."""
    async with distributed_stack(work) as (dist, record, feed):
        prepared = await prepare_script(script(turns), tts_addr=component_url(record, "tts"),
                                        tenant=TENANT)  # fmt: skip
        room = livekit_target(record) if livekit else None
        if livekit and room is None:
            print("  the stack runs no LiveKit server (make install builds it): no LiveKit calls")
        async with one_process(work) as local:
            targets = [t for t in (dist, local, room) if t is not None]
            for index, begin in enumerate(range(0, len(prepared), TURNS_PER_CALL)):
                calls = prepared[begin : begin + TURNS_PER_CALL]
                shift = index % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    result = await one_call(target, calls)
                    target.mode.calls.append(result)
                    print(f"  call {index + 1} {target.name}: {len(result.latencies())} "
                          f"replies, v2v {[round(v) for v in result.latencies()]}",
                          flush=True)  # fmt: skip
        await collect_distributed(dist, feed)
        if room is not None:
            await collect_distributed(room, feed)
    dist.mode.dropped = dropped_turns(work / "stack" / "spans.jsonl")  # exported at shutdown
    return dist.mode, local.mode, None if room is None else room.mode


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}"


def _minus(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    return None if a["p50"] is None or b["p50"] is None else float(a["p50"] - b["p50"])


def table(dist: dict[str, Any], local: dict[str, Any], lk: dict[str, Any] | None) -> str:
    head = ("stage (ms)", "dist p50", "dist p95", "1-proc p50", "1-proc p95", "overhead p50")
    rows: list[tuple[str, ...]] = [
        head + (("livekit p50", "livekit p95", "lk-twilio p50") if lk else ())
    ]
    for name in (*STAGES, "v2v_gateway", "v2v_caller", "barge_in_stop"):
        d, p = dist[name], local[name]
        row: tuple[str, ...] = (name, _ms(d["p50"]), _ms(d["p95"]), _ms(p["p50"]), _ms(p["p95"]),
                                _ms(_minus(d, p)))  # fmt: skip
        if lk:
            row += (_ms(lk[name]["p50"]), _ms(lk[name]["p95"]), _ms(_minus(lk[name], d)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                     enumerate(zip(r, widths, strict=True))) for r in rows]  # fmt: skip
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


async def main_async(turns: int, out: Path, livekit: bool) -> int:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        work = Path(tmp)
        print(f"== {turns} turns, each call through the distributed stack and through one "
              "process in turn", flush=True)  # fmt: skip
        dist, local, room = await interleaved(work, turns, livekit)
    d, p = dist.summary(), local.summary()
    lk = None if room is None else room.summary()
    overhead = {
        name: None if d[name]["p50"] is None or p[name]["p50"] is None
        else d[name]["p50"] - p[name]["p50"]
        for name in (*STAGES, "v2v_gateway", "v2v_caller")
    }  # fmt: skip
    report = {
        "benchmark": "voice",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "turns": turns,
        "distributed": d,
        "in_process": p,
        "overhead_p50_ms": overhead,
        "livekit": lk,
        "livekit_over_twilio_p50_ms": None if lk is None else {
            name: _minus(lk[name], d[name]) for name in (*STAGES, "v2v_gateway", "v2v_caller")
        },
        "targets": TARGETS,
        "calls": {
            "distributed": [c.to_dict() for c in dist.calls],
            "in_process": [c.to_dict() for c in local.calls],
            "livekit": [] if room is None else [c.to_dict() for c in room.calls],
        },
    }  # fmt: skip
    write_report(out, report)
    print(table(d, p, lk))
    print(f"turns answered: distributed {d['turns']}, one process {p['turns']}"
          + ("" if lk is None else f", livekit {lk['turns']}") + "; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")  # fmt: skip
    if "dropped_turns" in d:
        print(f"turns started and thrown away (distributed, by reason): {d['dropped_turns']}")
    print(f"targets: v2v p50 <= {TARGETS['v2v_p50_ms']} ms, p95 <= {TARGETS['v2v_p95_ms']} ms; "
          f"overhead p50 <= {TARGETS['overhead_p50_ms']} ms; barge-in p95 <= "
          f"{TARGETS['barge_in_p95_ms']} ms; LiveKit v2v p50 <= Twilio's + "
          f"{TARGETS['livekit_over_twilio_p50_ms']} ms")  # fmt: skip
    print(f"written: {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=24, help="caller turns per mode (>= 20)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-livekit", action="store_true", help="skip the LiveKit calls")
    args = parser.parse_args()
    return asyncio.run(main_async(args.turns, args.out, not args.no_livekit))


if __name__ == "__main__":
    raise SystemExit(main())
