"""Measure the embedded models as the services use them: STT latency per utterance length and
TTS time to first audio for a short clause and a long sentence. Prints a table and writes
``benchmarks/results/models.json``.

    make bench-models   # uv run --frozen python -m benchmarks.models
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.core import AudioIn, EndOfUtterance, FlushUtterance, SttInput, Transcript
from trunkline.tts.backends import StreamSettings
from trunkline.tts.backends.piper import PiperSynthesizer
from trunkline.tts.core import Clause, ClauseDone, TtsInput

UTTERANCES = [
    "Yes.",
    "Thanks for calling.",
    "I would like to check the balance on my account please.",
    "Please transfer me to a human agent, I have been waiting for twenty minutes and nobody "
    "has fixed my internet connection yet.",
]
TTS_CASES = {
    "short clause (3 words)": "Sure, one moment.",
    "long sentence (15 words)": "Our office is open from nine in the morning until five "
    "in the evening on weekdays.",
}
LONG_UTTERANCES = [
    "Hi, I'm calling because my crown came loose last night and I would like to book an "
    "appointment for this week if you have anything on Thursday.",
    "My daughter has a cleaning booked for next Tuesday, but she has a school trip that day, "
    "so I need to move it to the following Monday afternoon if I can.",
    "I had a filling done last month and since then the tooth hurts when I drink something "
    "cold, is that normal or should I come back in to have it checked?",
]
RUNS = 5
RESULTS = Path(__file__).resolve().parents[1] / "results" / "models.json"


async def main() -> None:
    tts, stt = PiperSynthesizer(), WhisperRecognizer()
    await tts.start()
    await stt.start()
    report: dict[str, Any] = {"runs": RUNS, "load_avg_1m": os.getloadavg()[0], "stt": [], "tts": []}
    print(f"{'STT utterance':<60} {'audio s':>8} {'p50 ms':>8} {'max ms':>8}")
    for text in UTTERANCES:
        pcm = b"".join(
            [c.pcm async for c in tts.synthesize(text, StreamSettings(sample_rate=16_000))]
        )
        await stt.transcribe(pcm)  # warm
        times = [(await stt.transcribe(pcm)).processing_s * 1000 for _ in range(RUNS)]
        print(
            f"{text[:58]:<60} {len(pcm) / 32_000:>8.2f} "
            f"{statistics.median(times):>8.0f} {max(times):>8.0f}"
        )
        report["stt"].append(
            {
                "text": text,
                "audio_s": len(pcm) / 32_000,
                "p50_ms": statistics.median(times),
                "max_ms": max(times),
            }
        )
    report["stt_long"] = await long_utterances(tts, stt)
    print(f"\n{'TTS case':<30} {'TTFA p50 ms':>12} {'TTFA max ms':>12} {'audio s':>8}")
    for name, text in TTS_CASES.items():
        ttfas: list[float] = []
        audio = 0.0
        for _ in range(RUNS + 1):

            async def one(t: str = text) -> AsyncIterator[TtsInput]:
                yield Clause("c", t)

            async for event in tts.stream(one(), StreamSettings(sample_rate=16_000)):
                if isinstance(event, ClauseDone):
                    ttfas.append(event.time_to_first_audio_s * 1000)
                    audio = event.audio_s
        ttfas = ttfas[1:]  # drop the warm-up
        print(f"{name:<30} {statistics.median(ttfas):>12.0f} {max(ttfas):>12.0f} {audio:>8.2f}")
        report["tts"].append(
            {
                "case": name,
                "ttfa_p50_ms": statistics.median(ttfas),
                "ttfa_max_ms": max(ttfas),
                "audio_s": audio,
            }
        )
    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


async def long_utterances(tts: PiperSynthesizer, stt: WhisperRecognizer) -> list[dict[str, Any]]:
    """Long utterances (5-8 s): the final decoded whole (before: what the gateway's one-shot
    call cost) vs incrementally (after: one stream, a flush every 400 ms of audio as the
    gateway reads ahead, each answered before the next; the final after END_OF_UTTERANCE
    decodes only the audio after the settled words)."""
    print(f"\n{'STT long utterance':<44} {'audio s':>8} {'whole ms':>9} {'incr ms':>8}  same text")
    rows = []
    for text in LONG_UTTERANCES:
        pcm = b"".join(
            [c.pcm async for c in tts.synthesize(text, StreamSettings(sample_rate=16_000))]
        )
        whole_ms, incremental_ms, same = [], [], []
        for _ in range(RUNS):
            whole = await stt.transcribe(pcm)
            whole_ms.append(whole.processing_s * 1000)
            final = await incremental(stt, pcm)
            incremental_ms.append(final.processing_s * 1000)
            same.append(_words(final.text) == _words(whole.text))
        row = {
            "text": text,
            "audio_s": len(pcm) / 32_000,
            "whole_p50_ms": statistics.median(whole_ms),
            "incremental_p50_ms": statistics.median(incremental_ms),
            "same_text_runs": sum(same),
            "runs": RUNS,
        }
        rows.append(row)
        print(
            f"{text[:42]:<44} {row['audio_s']:>8.2f} {row['whole_p50_ms']:>9.0f} "
            f"{row['incremental_p50_ms']:>8.0f}  {sum(same)}/{RUNS}"
        )
    return rows


async def incremental(stt: WhisperRecognizer, pcm: bytes) -> Transcript:
    step = 12_800  # 400 ms
    answered = asyncio.Event()

    async def spoken() -> AsyncIterator[SttInput]:
        for start in range(0, len(pcm), step):
            answered.clear()
            yield AudioIn(pcm[start : start + step])
            yield FlushUtterance()
            await answered.wait()
        yield EndOfUtterance()

    final: Transcript | None = None
    async for result in stt.stream(spoken()):
        if result.is_final:
            final = result
        else:
            answered.set()
    assert final is not None
    return final


def _words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


if __name__ == "__main__":
    asyncio.run(main())
