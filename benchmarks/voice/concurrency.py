"""``make bench-voice-calls``: how many concurrent calls ONE gateway process carries when every
answer comes from the semantic cache.

The gateway (its web app, Twilio transport with its own 20 ms pacer, the shared Silero VAD,
endpointing, the turn machine and pipeline, the grounding guard and reply decision) runs in a
subprocess with peers that cost nothing: the transcript is known, the context answers from its
cache, TTS replays audio rendered once by Piper. So what is measured is the media plane. The
simulated callers (this process) dial N calls at once, three questions each, in real time.

Per level: caller-measured voice-to-voice p50/p95, the gateway's CPU (% of one core) and
memory (RSS growth per call), the callers' own CPU (this process), and late outbound frames:
slots the gateway's pacer dropped (``skipped``) and reply frames the caller received more than
60 ms after the one before — split into those where the callers' own event loop was stalled
(> 20 ms late) during the gap, which the gateway cannot be blamed for, and the rest.
Writes ``benchmarks/results/voice-calls.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from benchmarks.voice.conversation import cpu_flags, cpu_model
from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    PreparedTurn,
    SimulatedCaller,
    direct_target,
    prepare_script,
)
from trunkline.cli.caller.latency import percentile

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "voice-calls.json"
AGENTS = ROOT / "agents"
AGENT, TENANT = "acme-dental", "acme"
QUESTION = "When are you open on Saturday?"
ANSWER = "We are open on Saturday from nine to one."
LINES = ("When are you open on Saturday?", "Are you open on Sunday?", "Where is the practice?")
OPTIONS = CallOptions(reply_quiet_ms=1200.0, reply_timeout_s=20.0)
LATE_GAP_S = 0.060  # a reply frame this long after the previous one reached the caller late
STALL_S = 0.020  # the callers' loop woke this much later than asked: the callers were stalled
LEVELS = (10, 25, 50)


# ---- the gateway process --------------------------------------------------------------------


async def serve(turns_out: Path) -> None:
    from aiohttp import web  # noqa: PLC0415
    from opentelemetry import trace  # noqa: PLC0415

    from benchmarks.voice.inproc import JsonlSink  # noqa: PLC0415
    from trunkline.gateway.app import Gateway, PeerChannels  # noqa: PLC0415
    from trunkline.gateway.core.clock import SystemClock  # noqa: PLC0415
    from trunkline.gateway.fakes import (  # noqa: PLC0415
        FakeContext,
        FakeLanguageModel,
        FakeTranscriber,
    )
    from trunkline.gateway.heap import freeze_startup_heap  # noqa: PLC0415
    from trunkline.gateway.peers.base import PeerEnv, Synthesizer  # noqa: PLC0415
    from trunkline.gateway.peers.retry import RetryPolicy  # noqa: PLC0415
    from trunkline.gateway.peers.types import CallInfo, ContextResult  # noqa: PLC0415
    from trunkline.gateway.pipeline import Peers  # noqa: PLC0415
    from trunkline.gateway.profile import AgentProfile, load_profiles  # noqa: PLC0415
    from trunkline.gateway.settings import GatewaySettings  # noqa: PLC0415
    from trunkline.gateway.transports.base import Transport  # noqa: PLC0415
    from trunkline.gateway.vad import SileroDetector  # noqa: PLC0415
    from trunkline.gateway.web import GatewayWeb, TenantAuth  # noqa: PLC0415

    profiles = load_profiles(AGENTS)
    profile = profiles[AGENT]
    rendered = await render_clauses((profile.greeting, profile.filler_text, ANSWER), 8000)

    class CachedAudio(Synthesizer):
        """TTS from a cache of rendered clauses (an unknown clause: silence of its length)."""

        def __init__(self, env: PeerEnv, policy: RetryPolicy, rate: int) -> None:
            super().__init__(env, policy)
            self.sample_rate = rate

        async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
            pcm = rendered.get((text, self.sample_rate)) or bytes(len(text.split()) * 6400)
            for start in range(0, len(pcm), 1600):  # 100 ms chunks at 8 kHz
                yield pcm[start : start + 1600]

    class CacheGateway(Gateway):
        def peers(self, profile: AgentProfile, out_rate: int = 16000) -> Peers:
            env, policy = self._env, self._policy
            cached = ContextResult(cached_answer=ANSWER, confidence=0.95, block=ANSWER)
            return Peers(
                stt=FakeTranscriber(env, lambda _: QUESTION, policy),
                context=FakeContext(env, cached),
                llm=FakeLanguageModel(env, lambda _: ANSWER, policy),
                tts=CachedAudio(env, policy, out_rate),
            )

        def detector(self) -> SileroDetector:
            detector = super().detector()
            task = asyncio.current_task()
            if task is not None:
                detectors[task] = detector
            return detector

        async def run_call(self, start: Any, transport: Transport) -> None:
            try:
                await super().run_call(start, transport)
            finally:
                pacer = getattr(transport, "pacer", None)
                vad = detectors.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
                row = {"call_id": start.call_id, "pacer_skipped": getattr(pacer, "skipped", None),
                       "pacer_taken": getattr(pacer, "taken", None),
                       "vad_scored": getattr(vad, "windows_scored", 0),
                       "vad_looked_up": getattr(vad, "windows_looked_up", 0),
                       **pauses.take()}  # fmt: skip
                with (turns_out.parent / "pacers.jsonl").open("a") as out:
                    out.write(json.dumps(row) + "\n")

    detectors: dict[asyncio.Task[Any], SileroDetector] = {}
    pauses = GcPauses()
    gc.callbacks.append(pauses.callback)
    secret = secrets.token_hex(16)
    settings = GatewaySettings(http_port=0)
    tracer = trace.get_tracer("benchmarks.voice.concurrency")
    channels = cast(PeerChannels, None)
    gateway = CacheGateway(
        settings, profiles, JsonlSink(turns_out), channels, clock=SystemClock(), tracer=tracer
    )
    tenants = {TENANT: TenantAuth("", secret, frozenset(profiles))}
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    media = GatewayWeb(
        tenants, gateway.run_call, clock=gateway.clock, public_url=f"http://127.0.0.1:{port}"
    )
    runner = web.AppRunner(media.app())
    await runner.setup()
    await web.SockSite(runner, sock).start()
    freeze_startup_heap()  # as the gateway's __main__ does once it listens
    print(f"READY {port} {secret}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


async def render_clauses(texts: tuple[str, ...], rate: int) -> dict[tuple[str, int], bytes]:
    """Each clause rendered once by Piper at ``rate`` (the gateway's TTS replays them)."""
    from trunkline.tts.backends import StreamSettings  # noqa: PLC0415
    from trunkline.tts.backends.piper import PiperSynthesizer  # noqa: PLC0415

    piper = PiperSynthesizer()
    await piper.start()
    rendered: dict[tuple[str, int], bytes] = {}
    try:
        for text in texts:
            chunks = piper.synthesize(text, StreamSettings(sample_rate=rate))
            rendered[text, rate] = b"".join([c.pcm async for c in chunks])
    finally:
        await piper.close()
    return rendered


class GcPauses:
    """Time the event loop spent in the garbage collector (each pause stops every call): CPU
    time, so that a collection the OS preempted on a loaded machine is not counted long."""

    def __init__(self) -> None:
        self._started = 0.0
        self.total_s = 0.0
        self.max_s = 0.0
        self.collections = 0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
            return
        pause = time.process_time() - self._started
        self.total_s += pause
        self.max_s = max(self.max_s, pause)
        self.collections += 1

    def take(self) -> dict[str, float]:
        """The pauses since the last take."""
        row = {"gc_s": self.total_s, "gc_max_ms": 1000 * self.max_s, "gc_n": self.collections}
        self.total_s, self.max_s, self.collections = 0.0, 0.0, 0
        return row


# ---- the callers ----------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def caller_audio(work: Path) -> list[PreparedTurn]:
    from trunkline.tts.backends import StreamSettings  # noqa: PLC0415
    from trunkline.tts.backends.base import SynthesisOptions  # noqa: PLC0415
    from trunkline.tts.backends.piper import PiperSynthesizer  # noqa: PLC0415

    tts = PiperSynthesizer(options=SynthesisOptions(first_audio_timeout_s=60.0))
    await tts.start()
    turns = []
    try:
        for index, text in enumerate(LINES):
            settings = StreamSettings(sample_rate=16_000, speaking_rate=1.1)
            pcm = b"".join([c.pcm async for c in tts.synthesize(text, settings)])
            path = work / f"line-{index}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16_000)
                out.writeframes(pcm)
            turns.append(CallerTurn(text=text, wav=path))
    finally:
        await tts.close()
    return await prepare_script(turns)


class LoopStalls:
    """Stalls of this process's event loop: a 5 ms sleep that woke more than ``STALL_S`` late
    (the callers could not read what the gateway sent meanwhile)."""

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (from, to) on the loop's clock

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + 0.005
            await asyncio.sleep(0.005)
            woke = loop.time()
            if woke - asked > STALL_S:
                self.stalls.append((asked, woke))

    def during(self, start: float, end: float) -> bool:
        return any(a < end and b > start for a, b in self.stalls)


async def one_call(url: str, secret: str, turns: list[PreparedTurn], delay: float) -> Any:
    await asyncio.sleep(delay)
    identity = CallIdentity()
    target = direct_target(url, identity, tenant=TENANT, agent=AGENT, stream_secret=secret)
    caller = SimulatedCaller(target, identity, OPTIONS)
    result = await caller.run(turns)
    # every media message, silent ones included: a pause between the agent's words is no gap
    times = [r.t for r in caller.log.received]
    gaps = [(a, b) for a, b in itertools.pairwise(times) if LATE_GAP_S < b - a < 1.0]
    return result, gaps


async def level(
    url: str, secret: str, pid: int, turns: list[PreparedTurn], n: int
) -> dict[str, Any]:
    rss_before, cpu_before, t0 = proc_rss_mb(pid), proc_cpu_s(pid), time.monotonic()
    own_before = proc_cpu_s(os.getpid())
    peak_rss = rss_before
    stalls = LoopStalls()
    watch = asyncio.create_task(stalls.run())
    calls = [asyncio.create_task(one_call(url, secret, turns, i * 0.05)) for i in range(n)]
    done = asyncio.gather(*calls, return_exceptions=True)
    while not done.done():
        await asyncio.sleep(0.5)
        peak_rss = max(peak_rss, proc_rss_mb(pid))
    results = await done
    watch.cancel()
    wall = time.monotonic() - t0
    cpu = proc_cpu_s(pid) - cpu_before
    own_cpu = proc_cpu_s(os.getpid()) - own_before
    ok = [r for r in results if not isinstance(r, BaseException)]
    v2v = [v for result, _ in ok for v in result.latencies()]
    answered = sum(1 for result, _ in ok for t in result.turns if t.outcome == "answered")
    gaps = [gap for _, call_gaps in ok for gap in call_gaps]
    caller_s = sum(result.frames_sent for result, _ in ok) * 0.02  # 20 ms media messages
    stalled = sum(1 for a, b in gaps if stalls.during(a, b))
    return {
        "calls": n,
        "failed_calls": len(results) - len(ok),
        "turns_answered": answered,
        "turns": n * len(turns),
        "v2v_p50_ms": percentile(v2v, 50),
        "v2v_p95_ms": percentile(v2v, 95),
        "late_reply_frames_at_caller": len(gaps),
        "late_frames_callers_stalled": stalled,
        "late_frames_not_explained_by_callers": len(gaps) - stalled,
        "caller_loop_stalls": len(stalls.stalls),
        "caller_loop_stall_max_ms": 1000 * max((b - a for a, b in stalls.stalls), default=0.0),
        "callers_cpu_pct_of_one_core": 100 * own_cpu / wall,
        "gateway_cpu_pct_of_one_core": 100 * cpu / wall,
        "gateway_cpu_ms_per_call_s": 1000 * cpu / wall / n,
        # per second of caller audio the gateway took in: holds when a loaded machine
        # stretches the wall clock (the work per frame is the same, it just waits longer)
        "gateway_cpu_ms_per_call_audio_s": 1000 * cpu / max(caller_s, 1e-9),
        "callers_cpu_ms_per_call_audio_s": 1000 * own_cpu / max(caller_s, 1e-9),
        "gateway_rss_mb_before": rss_before,
        "gateway_rss_mb_peak": peak_rss,
        "rss_mb_per_call": (peak_rss - rss_before) / n,
        "wall_s": wall,
        "load_avg_1m": os.getloadavg()[0],
    }


async def run(levels: tuple[int, ...], out: Path) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "voice-calls",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu_model(), "flags": cpu_flags(), "cpus": os.cpu_count()},
        "answers": "semantic cache (known transcript, cached answer, pre-rendered audio)",
        "levels": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        work = Path(tmp)
        turns = await caller_audio(work)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.voice.concurrency", "--serve",
            str(work / "turns.jsonl"), stdout=asyncio.subprocess.PIPE,
            stderr=(work / "gateway.log").open("wb"),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode().split()
            if not line or line[0] != "READY":
                raise RuntimeError("gateway failed: " + (work / "gateway.log").read_text()[-2000:])
            url = f"ws://127.0.0.1:{line[1]}/twilio/stream"
            await one_call(url, line[2], turns[:1], 0.0)  # warm: VAD, first call paths
            await ended_calls(work / "pacers.jsonl", 1, 10.0)  # its row is not the level's
            for n in levels:
                pacers = work / "pacers.jsonl"
                pacers.unlink(missing_ok=True)
                row = await level(url, line[2], proc.pid, turns, n)
                rows = await ended_calls(pacers, n)
                row["calls_reported_by_gateway"] = len(rows)
                row["pacer_skipped_frames"] = sum(r["pacer_skipped"] or 0 for r in rows)
                scored = sum(r.get("vad_scored", 0) for r in rows)
                looked_up = sum(r.get("vad_looked_up", 0) for r in rows)
                row["vad_windows_run"] = scored
                row["gateway_gc_s"] = sum(r.get("gc_s", 0.0) for r in rows)
                row["gateway_gc_max_pause_ms"] = max(
                    (r.get("gc_max_ms", 0.0) for r in rows), default=0.0
                )
                row["gateway_gc_collections"] = sum(r.get("gc_n", 0) for r in rows)
                row["vad_windows_from_silence_table"] = looked_up
                report["levels"].append(row)
                print(_line(row), flush=True)
        finally:
            proc.terminate()
            await proc.wait()
    write(report, out)
    return report


def read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(x) for x in text.splitlines() if x.strip()]


async def ended_calls(path: Path, n: int, within_s: float = 30.0) -> list[dict[str, Any]]:
    """The gateway's rows for the level's ``n`` calls (a loaded gateway ends them late)."""
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        rows = read_rows(path)
        if len(rows) >= n:
            break
    return rows


def skipped_slots(path: Path) -> int:
    """Outbound slots the gateway's pacers dropped, over the calls written to ``path``."""
    if not path.exists():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sum(row["pacer_skipped"] or 0 for row in rows)


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def _line(row: dict[str, Any]) -> str:
    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (
        f"{row['calls']:>4} calls: answered {row['turns_answered']}/{row['turns']}, failed "
        f"{row['failed_calls']}, v2v p50/p95 {ms(row['v2v_p50_ms'])}/{ms(row['v2v_p95_ms'])} ms, "
        f"gateway CPU {row['gateway_cpu_pct_of_one_core']:.0f}% of a core "
        f"({row['gateway_cpu_ms_per_call_s']:.1f} ms/s per call, "
        f"{row['gateway_cpu_ms_per_call_audio_s']:.1f} ms per call-second of audio), RSS "
        f"{row['gateway_rss_mb_before']:.0f}->{row['gateway_rss_mb_peak']:.0f} MB "
        f"({row['rss_mb_per_call']:.2f} MB/call), dropped slots {row['pacer_skipped_frames']}, "
        f"late frames at caller {row['late_reply_frames_at_caller']} "
        f"({row['late_frames_callers_stalled']} while the callers' loop stalled), callers' CPU "
        f"{row['callers_cpu_pct_of_one_core']:.0f}% of a core; VAD windows run "
        f"{row.get('vad_windows_run', '-')}, from the silence table "
        f"{row.get('vad_windows_from_silence_table', '-')}; gateway GC "
        f"{row.get('gateway_gc_s', 0.0):.2f} s (longest pause "
        f"{row.get('gateway_gc_max_pause_ms', 0.0):.0f} ms); load {row['load_avg_1m']:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    levels = tuple(int(x) for x in args.levels.split(","))
    report = asyncio.run(run(levels, args.out))
    machine = report["machine"]
    print(f"machine: {machine['cpu']} ({machine['cpus']} cpus) {' '.join(machine['flags'])}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
