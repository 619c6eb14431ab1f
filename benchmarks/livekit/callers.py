"""LiveKit callers for ``benchmarks.livekit``: a Python participant per room speaking a recorded
phrase and timing the agent's replies, in this process or in a process of their own
(``python -m benchmarks.livekit.callers``, JSON in on stdin, JSON out on stdout) so that the
gateway process under test does not also run the callers' Opus and Python loops.

Times are ``time.monotonic()`` (one clock for every process of the machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from benchmarks.livekit.hops import jitter_buffer
from benchmarks.voice.livekit_caller import voiced_span
from trunkline.gateway.transports.livekit_peer import LiveKitCaller

ROOT = Path(__file__).resolve().parents[2]
WAV = ROOT / "tests" / "data" / "audio" / "hours-joe-16k.wav"


def phrase() -> bytes:
    with wave.open(str(WAV)) as wav:
        return bytes(wav.readframes(wav.getnframes()))


def last_voiced_frame(pcm: bytes, rate: int) -> int:
    """The index of the phrase's last voiced 20 ms frame (0: none)."""
    span = voiced_span(pcm, rate)
    return 0 if span is None else span[1]


async def livekit_call(
    url: str,
    token: str,
    turns: int,
    pcm: bytes,
    *,
    jitter: dict[str, float] | None = None,
    lead_ms: int = 0,
) -> list[tuple[float, float]]:
    """(A, E) per answered turn: the caller's last voiced frame sent, the reply's first heard.
    Voice-to-voice is E - A, timed as the Twilio caller does (send of the last voiced frame)."""
    caller = LiveKitCaller(16000, lead_ms=lead_ms)
    figures: list[tuple[float, float]] = []
    last = last_voiced_frame(pcm, 16000)
    try:
        await caller.join(url, token)
        await _quiet(caller, first_after=0.0)  # the greeting
        for _ in range(turns):
            before = len(caller.said_times)
            caller.say(pcm)
            await asyncio.sleep((last + 1) * 0.02)
            for _ in range(500):  # until the last voiced frame went to the source
                if len(caller.said_times) > before + last:
                    break
                await asyncio.sleep(0.01)
            ended = caller.said_times[before + last]
            await _quiet(caller, first_after=ended)
            at = caller.first_loud(ended)
            if at is not None:
                figures.append((ended, at))
        if jitter is not None:  # the caller's jitter buffer for the agent's track
            jitter.update(await jitter_buffer(caller.agent_track))
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


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def many(url: str, tokens: dict[str, str], turns: int, lead_ms: int = 0) -> dict[str, Any]:
    """Every room's caller at once: room -> [[A, E], ...] or the error."""
    pcm = phrase()
    names = list(tokens)
    jitter: dict[str, dict[str, float]] = {name: {} for name in names}
    results = await asyncio.gather(
        *(
            livekit_call(url, tokens[n], turns, pcm, jitter=jitter[n], lead_ms=lead_ms)
            for n in names
        ),
        return_exceptions=True,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rooms": {n: r for n, r in zip(names, results, strict=True) if isinstance(r, list)},
        "errors": {
            n: repr(r) for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)
        },
        "jitter_buffers": jitter,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": rss_mb(),
    }


async def in_subprocess(
    url: str, tokens: dict[str, str], turns: int, lead_ms: int = 0, nice: int = 0
) -> dict[str, Any]:
    """:func:`many` in a process of its own (``nice``: its scheduling niceness, so that on a
    shared machine the gateway under test gets the cores first, as if the callers were
    elsewhere)."""
    argv = [sys.executable, "-m", "benchmarks.livekit.callers"]
    if nice:
        argv = ["nice", "-n", str(nice), *argv]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callers.json"
        spec = {"url": url, "tokens": tokens, "turns": turns, "lead_ms": lead_ms, "out": str(out)}
        await proc.communicate(json.dumps(spec).encode())
        if proc.returncode != 0:
            raise RuntimeError(f"the callers' process failed (exit {proc.returncode})")
        result: dict[str, Any] = json.loads(out.read_text())
    return result


async def orphan_watch() -> None:
    """Exit when the benchmark that started this process is gone (its callers would run on)."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


async def serve(spec: dict[str, Any]) -> dict[str, Any]:
    watch = asyncio.create_task(orphan_watch())
    try:
        return await many(
            spec["url"], spec["tokens"], int(spec["turns"]), int(spec.get("lead_ms", 0))
        )
    finally:
        watch.cancel()


if __name__ == "__main__":
    spec = json.load(sys.stdin)
    report = asyncio.run(serve(spec))
    Path(spec["out"]).write_text(json.dumps(report))
