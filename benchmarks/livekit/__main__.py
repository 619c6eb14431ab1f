"""``python -m benchmarks.livekit``: the LiveKit transport beside the Twilio media stream, on the
same turns, and many rooms at once in one gateway process.

One gateway web app (``GatewayWeb`` + ``CallSession``, the real turn machine at the platform's
turn-taking defaults) whose peers are fakes that answer at once (STT text fixed, the answer a
440 Hz tone, 5 frames per word): what is measured is the transport, not the models.

- Side by side: one Twilio call (``SimulatedCaller`` over ``/twilio/stream``, mu-law 8 kHz) and
  one LiveKit call (a ``livekit`` rtc participant through a real ``livekit-server`` on loopback,
  Opus both ways), each speaking the same recorded phrase ``--turns`` times. Voice-to-voice:
  the caller's last voiced frame sent -> the first voiced reply frame received, at the caller.
- Concurrency: ``--rooms`` LiveKit rooms at once, each a caller speaking ``--room-turns``
  phrases, the callers in a process of their own (``benchmarks/livekit/callers.py``):
  voice-to-voice p50/p95, the agent's 20 ms slots served late and frames its pacer skipped
  (dropped), and the gateway process's CPU seconds and RSS growth per room.
- ``--turns 0`` skips the side-by-side part (only the rooms run).
- Hops: the agent's transport is timed (``benchmarks/livekit/hops.py``): each turn's
  voice-to-voice cut into upstream, turn, pacer and downstream medians.

Prints tables and writes ``benchmarks/results/livekit.json`` with the CPU and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.livekit.callers import in_subprocess, livekit_call, phrase
from benchmarks.livekit.hops import ProbedTransport, turn_hops
from trunkline.audio import pcm16_to_mulaw, resample_pcm16
from trunkline.cli.caller.client import CallOptions, SimulatedCaller
from trunkline.cli.caller.dial import CallIdentity, direct_target
from trunkline.cli.caller.scenario import CallerTurn, PreparedTurn
from trunkline.config import TURN_TAKING
from trunkline.devservers import free_port
from trunkline.devservers.livekit import LiveKitServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.livekit_dispatch import LiveKitDispatch, room_token
from trunkline.gateway.livekit_rooms import key_table
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.livekit import LiveKitTransport
from trunkline.gateway.web import GatewayWeb, TenantAuth

ROOT = Path(__file__).resolve().parents[2]
WAV = ROOT / "tests" / "data" / "audio" / "hours-joe-16k.wav"
RESULTS = ROOT / "benchmarks" / "results" / "livekit.json"
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
ANSWER = "We are open from nine to five."  # 7 words x 5 frames: 0.7 s of tone


class ToneSynthesizer(FakeSynthesizer):
    async def _synthesize(self, call: CallInfo, text: str):  # type: ignore[no-untyped-def]
        n = self.sample_rate // 50 * self.frames_per_word
        t = np.arange(n) / self.sample_rate
        word = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        for _ in text.split():
            yield word


class Rig:
    def __init__(self) -> None:
        self.clock = SystemClock()
        self.tracer = TracerProvider().get_tracer("bench")
        self.transports: list[Transport] = []
        self.web = GatewayWeb({"acme": AUTH}, self.run_call, clock=self.clock, public_url="")

    async def run_call(self, start: CallStart, transport: Transport) -> None:
        env = PeerEnv(self.clock, self.tracer)
        self.transports.append(transport)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "what are your hours"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: ANSWER),
                ToneSynthesizer(env, 5, sample_rate=transport.out_rate),
            ),
            EnergyDetector(floor=300),
            RecordingSink(),
            clock=self.clock,
            tracer=self.tracer,
            config=SessionConfig(
                turn=TurnConfig(
                    endpoint=EndpointConfig(onset_frames=3, endpoint_ms=TURN_TAKING.endpoint_ms)
                ),
                greeting="Hello.",
                grounding_texts=(ANSWER,),
                llm_prefill=False,
            ),
        )
        await session.run()


async def twilio_call(port: int, turns: int) -> list[float]:
    mulaw = pcm16_to_mulaw(resample_pcm16(phrase(), 16000, 8000))
    script = [PreparedTurn(CallerTurn(text="what are your hours"), mulaw) for _ in range(turns)]
    identity = CallIdentity()
    target = direct_target(
        f"ws://127.0.0.1:{port}/twilio/stream",
        identity,
        tenant="acme",
        agent="support",
        stream_secret=AUTH.stream_secret,
    )
    caller = SimulatedCaller(target, identity, CallOptions(reply_quiet_ms=800))
    result = await caller.run(script)
    return [t.voice_to_voice_ms / 1000 for t in result.turns if t.voice_to_voice_ms is not None]


def probe_of(rig: Rig, room: str) -> ProbedTransport | None:
    return next(
        (t for t in rig.transports if isinstance(t, ProbedTransport) and t.label == room), None
    )


def hop_rows(
    pairs: Sequence[tuple[float, float]], probe: ProbedTransport | None
) -> list[dict[str, float]]:
    if probe is None:
        return []
    return [row for a, e in pairs if (row := turn_hops(a, e, probe))]


def hop_medians(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = ("upstream_ms", "turn_ms", "pacer_ms", "downstream_ms")
    return {k: round(statistics.median(r[k] for r in rows), 1) for k in keys} if rows else {}


def medians(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for row in rows for k in row})
    return {k: round(statistics.median(r[k] for r in rows if k in r), 1) for k in keys}


def stats(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "mean_ms": round(1000 * statistics.fmean(ordered), 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rig = Rig()
    port = free_port()
    livekit = LiveKitServer(webhook_urls=[f"http://127.0.0.1:{port}/livekit/webhook"])
    keys = key_table(livekit.api_key, livekit.api_secret, {"acme": ("", "")})
    dispatch = LiveKitDispatch(rig.web, livekit.url, keys, transport_class=ProbedTransport)
    app = rig.web.app()
    dispatch.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.to_thread(livekit.start)
    key = keys[livekit.api_key]
    pcm = phrase()
    try:
        twilio = await twilio_call(port, args.turns) if args.turns else []
        room = f"acme.support.{uuid.uuid4().hex[:8]}"
        caller_jitter: dict[str, float] = {}
        pairs = (
            await livekit_call(
                livekit.url,
                room_token(key, room, "caller"),
                args.turns,
                pcm,
                jitter=caller_jitter,
                lead_ms=args.caller_lead_ms,
            )
            if args.turns
            else []
        )
        single_probe = probe_of(rig, room)
        agent_jitter = single_probe.jitter if single_probe is not None else {}
        single = [e - a for a, e in pairs]
        single_hops = hop_rows(pairs, probe_of(rig, room))

        before_cpu = resource.getrusage(resource.RUSAGE_SELF)
        before_rss = rss_mb()
        rig.transports.clear()
        rooms = [f"acme.support.r{i}-{uuid.uuid4().hex[:6]}" for i in range(args.rooms)]
        tokens = {r: room_token(key, r, f"c{i}") for i, r in enumerate(rooms)}
        started = time.monotonic()
        callers: dict[str, Any] = (
            await in_subprocess(
                livekit.url, tokens, args.room_turns, args.caller_lead_ms, args.callers_nice
            )
            if rooms
            else {"rooms": {}, "errors": {}, "cpu_s": 0.0, "rss_mb": 0.0}
        )
        wall = time.monotonic() - started
        after_cpu = resource.getrusage(resource.RUSAGE_SELF)
        peak_rss = rss_mb()
        failed = list(callers["errors"].values())
        many = [e - a for r in callers["rooms"].values() for a, e in r]
        many_hops = [
            row for name, r in callers["rooms"].items() for row in hop_rows(r, probe_of(rig, name))
        ]
        probes = [t for t in rig.transports if isinstance(t, LiveKitTransport)]
        skipped = sum(t.pacer.skipped for t in probes)
        late = sum(t.slots_late for t in probes)
        captures = sum(t.captures for t in probes)
        frames_out = sum(t.frames_played for t in probes)
    finally:
        await runner.cleanup()
        livekit.close()
    cpu_s = (after_cpu.ru_utime + after_cpu.ru_stime) - (before_cpu.ru_utime + before_cpu.ru_stime)
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "endpoint_ms": TURN_TAKING.endpoint_ms,
        "agent_sends_silence": ProbedTransport.send_silence,
        "agent_source_queue_ms": ProbedTransport.source_queue_ms,
        "agent_feeds_ahead": ProbedTransport.feed_ahead,
        "caller_lead_ms": args.caller_lead_ms,
        "callers_nice": args.callers_nice,
        "agent_shared_clock": ProbedTransport.shared_clock,
        "agent_capture_batch_frames": ProbedTransport.capture_batch_frames,
        "agent_rooms_narrow_ffi": ProbedTransport.narrow_ffi,
        "twilio": stats(twilio),
        "livekit": stats(single),
        "livekit_hops_p50_ms": hop_medians(single_hops),
        "livekit_jitter_buffers": {"agent_side": agent_jitter, "caller_side": caller_jitter},
        "livekit_minus_twilio_p50_ms": (
            round(1000 * (statistics.median(single) - statistics.median(twilio)), 1)
            if single and twilio
            else None
        ),
        "concurrent": {
            "rooms": args.rooms,
            "turns_per_room": args.room_turns,
            "answered_turns": len(many),
            "failed_rooms": failed,
            "voice_to_voice": stats(many),
            "hops_p50_ms": hop_medians(many_hops),
            "jitter_buffers_p50": {
                "agent_side": medians([p.jitter for p in probes if isinstance(p, ProbedTransport)]),
                "caller_side": medians(list(callers.get("jitter_buffers", {}).values())),
            },
            "agent_frames_skipped": skipped,
            "agent_slots_late": late,
            "agent_reply_frames": frames_out,
            "agent_captures": captures,
            "gateway_cpu_s_per_room": round(cpu_s / max(1, args.rooms), 2),
            "gateway_cores_busy": round(cpu_s / wall, 2) if args.rooms else 0.0,
            "callers_process_cpu_s": round(callers["cpu_s"], 1),
            "callers_process_rss_mb": round(callers["rss_mb"], 1),
            "rss_growth_mb_per_room": round((peak_rss - before_rss) / max(1, args.rooms), 1),
            "wall_s": round(wall, 1),
        },
    }


def table(report: dict[str, Any]) -> str:
    rows = [("path", "turns", "p50 ms", "p95 ms", "mean ms")]
    for name in ("twilio", "livekit"):
        s = report[name]
        rows.append(
            (name, str(s["n"]), str(s.get("p50_ms")), str(s.get("p95_ms")), str(s.get("mean_ms")))
        )
    c = report["concurrent"]
    v = c["voice_to_voice"]
    rows.append(
        (
            f"livekit x{c['rooms']} rooms",
            str(v["n"]),
            str(v.get("p50_ms")),
            str(v.get("p95_ms")),
            str(v.get("mean_ms")),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"livekit hops p50 (ms): {report['livekit_hops_p50_ms']}")
    lines.append(f"livekit jitter buffers: {report['livekit_jitter_buffers']}")
    lines.append(f"x{c['rooms']} rooms hops p50 (ms): {c['hops_p50_ms']}")
    lines.append(
        f"livekit - twilio (p50): {report['livekit_minus_twilio_p50_ms']} ms; concurrent: "
        f"{c['agent_frames_skipped']} agent frames skipped, {c['agent_slots_late']} slots late, "
        f"{c['agent_reply_frames']} reply frames in {c['agent_captures']} captures, "
        f"gateway {c['gateway_cpu_s_per_room']} CPU s/room "
        f"({c['gateway_cores_busy']} cores busy), {c['rss_growth_mb_per_room']} MB RSS/room, "
        f"failed rooms {len(c['failed_rooms'])}; load {report['load_average'][0]:.1f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--room-turns", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--send-silence",
        choices=("default", "on", "off"),
        default="default",
        help="the agent's track: silent frames in slots without reply audio",
    )
    parser.add_argument("--source-queue-ms", type=int, default=LiveKitTransport.source_queue_ms)
    parser.add_argument(
        "--caller-lead-ms",
        type=int,
        default=40,
        help="the callers keep this much audio queued in their source (steady sending)",
    )
    parser.add_argument(
        "--feed-ahead",
        choices=("default", "on", "off"),
        default="default",
        help="the agent's transport hands queued reply frames to the source at once",
    )
    parser.add_argument(
        "--own-clock", action="store_true", help="each room's pacer runs a task of its own"
    )
    parser.add_argument(
        "--callers-nice",
        type=int,
        default=0,
        help="run the rooms' callers at this niceness (10: the gateway gets the cores first)",
    )
    parser.add_argument(
        "--wide-ffi",
        action="store_true",
        help="rooms keep the SDK's own FFI subscription (every capture callback wakes every room)",
    )
    parser.add_argument(
        "--capture-batch",
        type=int,
        default=LiveKitTransport.capture_batch_frames,
        help="reply frames per capture into the agent's source (1: one per 20 ms frame)",
    )
    options = parser.parse_args()
    ProbedTransport.shared_clock = not options.own_clock
    if options.send_silence != "default":
        ProbedTransport.send_silence = options.send_silence == "on"
    if options.feed_ahead != "default":
        ProbedTransport.feed_ahead = options.feed_ahead == "on"
    ProbedTransport.source_queue_ms = options.source_queue_ms
    ProbedTransport.capture_batch_frames = options.capture_batch
    ProbedTransport.narrow_ffi = not options.wide_ffi
    report = asyncio.run(main(options))
    print(table(report))
    options.out.write_text(json.dumps(report, indent=2) + "\n")
