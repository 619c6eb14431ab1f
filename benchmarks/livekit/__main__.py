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
  phrases; voice-to-voice p50/p95, frames the agent's pacer skipped (dropped), and the process's
  CPU seconds and RSS growth per room (the callers run in the same process: both ends counted).

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
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

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
from trunkline.gateway.transports.livekit_peer import LiveKitCaller
from trunkline.gateway.web import GatewayWeb, TenantAuth

ROOT = Path(__file__).resolve().parents[2]
WAV = ROOT / "tests" / "data" / "audio" / "hours-joe-16k.wav"
RESULTS = ROOT / "benchmarks" / "results" / "livekit.json"
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
ANSWER = "We are open from nine to five."  # 7 words x 5 frames: 0.7 s of tone
FLOOR_DBFS = -45.0


class ToneSynthesizer(FakeSynthesizer):
    async def _synthesize(self, call: CallInfo, text: str):  # type: ignore[no-untyped-def]
        n = self.sample_rate // 50 * self.frames_per_word
        t = np.arange(n) / self.sample_rate
        word = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        for _ in text.split():
            yield word


def phrase() -> bytes:
    with wave.open(str(WAV)) as wav:
        return bytes(wav.readframes(wav.getnframes()))


def last_voiced_s(pcm: bytes, rate: int) -> float:
    """Where the phrase's last voiced 20 ms frame ends (seconds from its start)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    step = rate // 50
    last = 0
    for i in range(0, len(samples) - step + 1, step):
        rms = float(np.sqrt(np.mean(samples[i : i + step] ** 2)))
        if 20 * np.log10(max(rms, 1e-9) / 32768) > FLOOR_DBFS:
            last = i + step
    return last / rate


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


async def livekit_call(url: str, token: str, turns: int, pcm: bytes) -> list[float]:
    caller = LiveKitCaller(16000)
    figures: list[float] = []
    voiced_s = last_voiced_s(pcm, 16000)
    try:
        await caller.join(url, token)
        await _quiet(caller, first_after=0.0)  # the greeting
        for _ in range(turns):
            started = time.monotonic()
            caller.say(pcm)
            ended = started + voiced_s
            await _quiet(caller, first_after=ended)
            at = caller.first_loud(ended)
            if at is not None:
                figures.append(at - ended)
    finally:
        await caller.leave()
    return figures


async def _quiet(caller: LiveKitCaller, first_after: float, limit_s: float = 20.0) -> None:
    """Until a reply started after ``first_after`` and then 0.8 s passed without one."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        heard = caller.first_loud(first_after)
        last = caller.last_loud
        if heard is not None and last is not None and time.monotonic() - last > 0.8:
            return
        await asyncio.sleep(0.05)


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
    dispatch = LiveKitDispatch(rig.web, livekit.url, keys)
    app = rig.web.app()
    dispatch.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.to_thread(livekit.start)
    key = keys[livekit.api_key]
    pcm = phrase()
    try:
        twilio = await twilio_call(port, args.turns)
        room = f"acme.support.{uuid.uuid4().hex[:8]}"
        single = await livekit_call(livekit.url, room_token(key, room, "caller"), args.turns, pcm)

        before_cpu = resource.getrusage(resource.RUSAGE_SELF)
        before_rss = rss_mb()
        rig.transports.clear()
        rooms = [f"acme.support.r{i}-{uuid.uuid4().hex[:6]}" for i in range(args.rooms)]
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                livekit_call(livekit.url, room_token(key, r, f"c{i}"), args.room_turns, pcm)
                for i, r in enumerate(rooms)
            ),
            return_exceptions=True,
        )
        wall = time.monotonic() - started
        after_cpu = resource.getrusage(resource.RUSAGE_SELF)
        peak_rss = rss_mb()
        failed = [repr(r) for r in results if isinstance(r, BaseException)]
        many = [f for r in results if isinstance(r, list) for f in r]
        skipped = sum(t.pacer.skipped for t in rig.transports if isinstance(t, LiveKitTransport))
    finally:
        await runner.cleanup()
        livekit.close()
    cpu_s = (after_cpu.ru_utime + after_cpu.ru_stime) - (before_cpu.ru_utime + before_cpu.ru_stime)
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "endpoint_ms": TURN_TAKING.endpoint_ms,
        "twilio": stats(twilio),
        "livekit": stats(single),
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
            "agent_frames_skipped": skipped,
            "cpu_s_per_room": round(cpu_s / max(1, args.rooms), 2),
            "cpu_share_of_one_core": round(cpu_s / wall, 2),
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
    lines.append(
        f"livekit - twilio (p50): {report['livekit_minus_twilio_p50_ms']} ms; concurrent: "
        f"{c['agent_frames_skipped']} agent frames skipped, {c['cpu_s_per_room']} CPU s/room "
        f"({c['cpu_share_of_one_core']} cores busy), {c['rss_growth_mb_per_room']} MB RSS/room, "
        f"failed rooms {len(c['failed_rooms'])}; load {report['load_average'][0]:.1f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--room-turns", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    report = asyncio.run(main(parser.parse_args()))
    print(table(report))
    parser.parse_args().out.write_text(json.dumps(report, indent=2) + "\n")
