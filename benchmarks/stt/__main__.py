"""``make bench-stt``: word error rate of the embedded STT on phone-band caller audio, with and
without the agent's vocabulary, its latency both ways, and how its confidence separates clear
speech from noisy, muffled and garbled audio. Prints tables and writes
``benchmarks/results/stt.json``.

The labelled set (``utterances.yaml``: two domains, 40 caller utterances with weekdays, times,
prices, names and product words) is synthesized by every voice available (Piper always,
espeak-ng when installed) and sent over the phone band as a Twilio call delivers it
(``speech.py``). Each utterance is decoded without and with the vocabulary, the order
alternating, so whatever else the machine does falls on both alike. Synthetic speech only:
there is no recorded human speech in the repository.

    make bench-stt   # uv run --frozen python -m benchmarks.stt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import yaml

from benchmarks.stt import speech
from trunkline.agents.spec import load_agent_spec
from trunkline.agents.vocabulary import agent_vocabulary
from trunkline.gateway.profile import KNOWLEDGE_DIR, knowledge_texts
from trunkline.stt.backends.whisper import WhisperRecognizer
from trunkline.stt.core import Transcript, Vocabulary
from trunkline.stt.core.wer import WordErrors, missed_terms, word_errors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATASET = HERE / "utterances.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "stt.json"
MODES = ("plain", "biased")


@dataclass(frozen=True, slots=True)
class Utterance:
    domain: str
    id: str
    text: str


@dataclass
class Tally:
    errors: WordErrors = field(default_factory=lambda: WordErrors(0, 0, 0, 0))
    terms_said: int = 0
    terms_missed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)

    def add(self, ref: str, heard: Transcript, terms: tuple[str, ...]) -> WordErrors:
        errors = word_errors(ref, heard.text)
        said, missed = missed_terms(ref, heard.text, terms)
        self.errors += errors
        self.terms_said += said
        self.terms_missed += missed
        self.latencies_ms.append(heard.processing_s * 1000)
        self.confidences.append(heard.confidence)
        return errors

    def summary(self) -> dict[str, Any]:
        return {
            "wer": round(self.errors.rate, 4),
            "substitutions": self.errors.substitutions,
            "deletions": self.errors.deletions,
            "insertions": self.errors.insertions,
            "reference_words": self.errors.reference_words,
            "terms_said": self.terms_said,
            "terms_missed": self.terms_missed,
            "latency_p50_ms": round(pct(self.latencies_ms, 50), 1),
            "latency_p95_ms": round(pct(self.latencies_ms, 95), 1),
        }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def load_dataset() -> tuple[list[Utterance], dict[str, Vocabulary], dict[str, str]]:
    """Utterances, each domain's vocabulary, and where that vocabulary came from."""
    data = yaml.safe_load(DATASET.read_text(encoding="utf-8"))
    utterances: list[Utterance] = []
    vocabularies: dict[str, Vocabulary] = {}
    sources: dict[str, str] = {}
    for domain, spec_data in data["domains"].items():
        agent = spec_data["agent"]
        path = ROOT / "agents" / f"{agent}.yaml"
        spec = load_agent_spec(path)
        knowledge = knowledge_texts(path.parent / agent / KNOWLEDGE_DIR)
        sources[domain] = f"agents/{agent}.yaml + {len(knowledge)} knowledge documents"
        vocabularies[domain] = Vocabulary(agent_vocabulary(spec, knowledge), spec.stt.boost)
        utterances += [Utterance(domain, u["id"], u["text"]) for u in spec_data["utterances"]]
    return utterances, vocabularies, sources


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
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


async def accuracy(
    recognizer: WhisperRecognizer,
    audio: dict[tuple[str, str], bytes],
    utterances: list[Utterance],
    vocabularies: dict[str, Vocabulary],
    voices: list[str],
) -> tuple[dict[str, dict[str, Tally]], list[dict[str, Any]]]:
    tallies = {mode: {v: Tally() for v in [*voices, "all"]} for mode in MODES}
    rows: list[dict[str, Any]] = []
    for n, (utt, voice) in enumerate((u, v) for u in utterances for v in voices):
        pcm = audio[(voice, utt.id)]
        vocab = vocabularies[utt.domain]
        order = MODES if n % 2 == 0 else MODES[::-1]
        heard: dict[str, Transcript] = {}
        for mode in order:
            chosen = vocab if mode == "biased" else Vocabulary()
            heard[mode] = await recognizer.transcribe(pcm, vocabulary=chosen)
        row: dict[str, Any] = {"id": utt.id, "voice": voice, "text": utt.text}
        for mode in MODES:
            errors = tallies[mode][voice].add(utt.text, heard[mode], vocab.phrases)
            tallies[mode]["all"].add(utt.text, heard[mode], vocab.phrases)
            row[mode] = {
                "heard": heard[mode].text,
                "errors": errors.errors,
                "confidence": round(heard[mode].confidence, 3),
                "ms": round(heard[mode].processing_s * 1000, 1),
            }
        rows.append(row)
    return tallies, rows


async def calibration(
    recognizer: WhisperRecognizer,
    audio: dict[tuple[str, str], bytes],
    utterances: list[Utterance],
    vocabularies: dict[str, Vocabulary],
    voices: list[str],
) -> dict[str, list[float]]:
    """Confidence (biased, as the gateway asks) per kind of audio. ``clear/right``: clean
    phone-band utterances heard with no word error; ``clear/wrong``: with one or more."""
    kinds: dict[str, list[float]] = {
        "clear/right": [],
        "clear/wrong": [],
        "noisy 10 dB": [],
        "noisy 0 dB": [],
        "muffled": [],
        "garbled": [],
        "line noise": [],
    }
    cases = [(u, v) for u in utterances for v in voices]
    for seed, (utt, voice) in enumerate(cases):
        pcm, vocab = audio[(voice, utt.id)], vocabularies[utt.domain]
        clear = await recognizer.transcribe(pcm, vocabulary=vocab)
        right = word_errors(utt.text, clear.text).errors == 0
        kinds["clear/right" if right else "clear/wrong"].append(clear.confidence)
        degraded = {
            "noisy 10 dB": speech.with_noise(pcm, 10.0, seed),
            "noisy 0 dB": speech.with_noise(pcm, 0.0, seed),
            "muffled": speech.muffled(pcm),
            "garbled": speech.garbled(pcm, seed),
            "line noise": speech.line_noise(len(pcm) / 2 / speech.RATE, seed),
        }
        for kind, sound in degraded.items():
            result = await recognizer.transcribe(sound, vocabulary=vocab)
            kinds[kind].append(0.0 if result.no_speech else result.confidence)
    return kinds


def propose_threshold(kinds: dict[str, list[float]]) -> dict[str, Any]:
    """A threshold one step (0.05) below the lowest confidence of a clear, correctly heard
    utterance (rounded down to a multiple of 0.05): synthetic speech is clearer than callers,
    so none of it should be asked to repeat; and what share of each kind it sends back."""
    right = kinds["clear/right"]
    threshold = round(max(math.floor(min(right) * 20) / 20 - 0.05, 0.0), 2) if right else 0.0

    def below(limit: float) -> dict[str, float | None]:
        return {
            kind: round(sum(c < limit for c in values) / len(values), 3) if values else None
            for kind, values in kinds.items()
        }

    return {
        "threshold": threshold,
        "share_asked_to_repeat": below(threshold),
        "share_below": {f"{limit:.1f}": below(limit) for limit in (0.3, 0.4, 0.5, 0.6, 0.7)},
    }


def added_ms(rows: list[dict[str, Any]], voice: str) -> list[float]:
    """Per utterance, what biasing added to the latency (the two decodes ran back to back)."""
    return [r["biased"]["ms"] - r["plain"]["ms"] for r in rows if voice in ("all", r["voice"])]


def print_tables(
    tallies: dict[str, dict[str, Tally]],
    rows: list[dict[str, Any]],
    kinds: dict[str, list[float]],
    proposal: dict[str, Any],
) -> None:
    print(
        f"\n{'voice':<16} {'WER plain':>9} {'biased':>7} {'terms missed':>13} "
        f"{'p50 ms':>11} {'p95 ms':>11} {'added p50':>9}"
    )
    for voice in tallies["plain"]:
        plain, biased = tallies["plain"][voice], tallies["biased"][voice]
        print(
            f"{voice:<16} {plain.errors.rate:>9.1%} {biased.errors.rate:>7.1%} "
            f"{plain.terms_missed:>5}/{plain.terms_said:<3}->{biased.terms_missed:>3} "
            f"{pct(plain.latencies_ms, 50):>5.0f}->{pct(biased.latencies_ms, 50):<5.0f}"
            f"{pct(plain.latencies_ms, 95):>5.0f}->{pct(biased.latencies_ms, 95):<5.0f}"
            f"{statistics.median(added_ms(rows, voice)):>9.0f}"
        )
    print(f"\n{'audio (biased)':<14} {'n':>4} {'conf p10':>9} {'p50':>6} {'p90':>6} {'< thr':>6}")
    for kind, values in kinds.items():
        if not values:
            continue
        share = proposal["share_asked_to_repeat"][kind]
        print(
            f"{kind:<14} {len(values):>4} {pct(values, 10):>9.2f} {pct(values, 50):>6.2f} "
            f"{pct(values, 90):>6.2f} {share:>6.0%}"
        )
    print(f"proposed GATEWAY_MIN_STT_CONFIDENCE (Whisper): {proposal['threshold']:.2f}")


async def main(args: argparse.Namespace) -> None:
    utterances, vocabularies, sources = load_dataset()
    voices = speech.piper_voices() + speech.espeak_voices()
    if args.voices:
        voices = [v for v in voices if v.name in args.voices]
    started = time.perf_counter()
    audio: dict[tuple[str, str], bytes] = {}
    for voice in voices:
        for utt in utterances:
            audio[(voice.name, utt.id)] = speech.phone_band(*voice.speak(utt.text))
    synth_s = time.perf_counter() - started
    print(f"{len(audio)} phone-band utterances ({len(voices)} voices) in {synth_s:.0f} s")
    for domain, phrases in vocabularies.items():
        print(f"vocabulary {domain} ({sources[domain]}): {', '.join(phrases.phrases)}")

    load_before = os.getloadavg()
    recognizer = WhisperRecognizer()
    await recognizer.start()
    try:
        warm = audio[(voices[0].name, utterances[0].id)]
        for vocab in [Vocabulary(), *vocabularies.values()]:
            await recognizer.transcribe(warm, vocabulary=vocab)
        names = [v.name for v in voices]
        tallies, rows = await accuracy(recognizer, audio, utterances, vocabularies, names)
        piper = [n for n in names if n.startswith("piper")]
        kinds = await calibration(recognizer, audio, utterances, vocabularies, piper)
    finally:
        await recognizer.close()
    proposal = propose_threshold(kinds)
    print_tables(tallies, rows, kinds, proposal)
    no_espeak = not speech.espeak_voices()
    report = {
        "benchmark": "stt",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "backend": {
            "model": "whisper tiny.en (CTranslate2 int8)",
            "config": {
                k: getattr(recognizer.config, k)
                for k in ("beam_size", "base_tokens", "tokens_per_s", "tail_pad_s")
            }
            | {
                "max_prompt_tokens": recognizer.config.max_prompt_tokens,
                "prompt_after": recognizer.config.prompt_after,
            },
        },
        "audio": "synthetic speech only (Piper en_US joe; espeak-ng where installed) -> 8 kHz "
        "mu-law -> 16 kHz, as a Twilio call delivers it",
        "espeak_ng": "not installed: its voices were skipped" if no_espeak else "installed",
        "utterances": len(utterances),
        "voices": [v.name for v in voices],
        "vocabularies": {d: list(v.phrases) for d, v in vocabularies.items()},
        "vocabulary_sources": sources,
        "results": {
            mode: {voice: t.summary() for voice, t in per_voice.items()}
            for mode, per_voice in tallies.items()
        },
        "biasing_added_ms": {
            voice: {
                "p50": round(statistics.median(added_ms(rows, voice)), 1),
                "p95": round(pct(added_ms(rows, voice), 95), 1),
            }
            for voice in tallies["plain"]
        },
        "confidence": {
            kind: {
                "n": len(values),
                "p10": round(pct(values, 10), 3),
                "p50": round(pct(values, 50), 3),
                "p90": round(pct(values, 90), 3),
                "values": [round(v, 3) for v in values],
            }
            for kind, values in kinds.items()
            if values
        },
        "confidence_threshold": proposal,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", nargs="*", help="only these voices (default: every one)")
    asyncio.run(main(parser.parse_args()))
