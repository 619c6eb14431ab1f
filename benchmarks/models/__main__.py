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


if __name__ == "__main__":
    asyncio.run(main())
