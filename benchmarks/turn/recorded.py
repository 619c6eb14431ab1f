"""Recorded human speech for ``make bench-turn``: the phone conversation in pyannote.audio's wheel.

``pyannote/audio/sample/`` holds 30 s of two people on a phone line (16 kHz mono, both sides
mixed), its speaker turns (``sample.rttm``) and a time-aligned transcript (``sample.stm``). The
files are found in the installed wheel, never imported (pyannote's own dependencies are not
installed). Each speaker turn (the transcript's consecutive segments of one speaker) is cut out
as a caller utterance; its end is a real end of turn — the other person spoke next — and every
pause inside it (a sentence end the speaker went on from, a hesitation) is one where the
speaker was not done. The last turn runs into the end of the recording, so it is left out.
"""

from __future__ import annotations

import importlib.util
import wave
from dataclasses import dataclass
from pathlib import Path

SAMPLE_DIR = ("pyannote", "audio", "sample")
RATE = 16_000


@dataclass(frozen=True)
class Segment:
    speaker: str
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class SpeakerTurn:
    speaker: str
    segments: tuple[Segment, ...]
    next_start_s: float | None  # when the other person spoke next; None: the recording ended

    @property
    def start_s(self) -> float:
        return self.segments[0].start_s

    @property
    def end_s(self) -> float:
        return self.segments[-1].end_s

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


def sample_dir() -> Path:
    """``pyannote/audio/sample`` inside the installed pyannote.audio wheel."""
    spec = importlib.util.find_spec("pyannote")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        candidate = Path(root).joinpath(*SAMPLE_DIR[1:])
        if (candidate / "sample.wav").is_file() and (candidate / "sample.stm").is_file():
            return candidate
    raise FileNotFoundError(
        "pyannote/audio/sample/sample.wav not found: the pyannote.audio 4.0.7 wheel that carries "
        "it is a dev dependency (uv sync, make install)"
    )


def parse_stm(text: str) -> list[Segment]:
    """STM lines: ``<file> <channel> <speaker> <start> <end> <words...>``."""
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        fields = line.split()
        if len(fields) < 6:
            raise ValueError(f"sample.stm line {number}: expected 6+ fields, got {line!r}")
        _, _, speaker, start, end, *words = fields
        segments.append(Segment(speaker, float(start), float(end), " ".join(words)))
    return sorted(segments, key=lambda s: s.start_s)


def speaker_turns(segments: list[Segment]) -> list[SpeakerTurn]:
    """Consecutive segments of one speaker make a turn; it ends when the other one speaks."""
    groups: list[list[Segment]] = []
    for segment in segments:
        if groups and groups[-1][-1].speaker == segment.speaker:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    turns = []
    for i, group in enumerate(groups):
        following = groups[i + 1][0].start_s if i + 1 < len(groups) else None
        turns.append(SpeakerTurn(group[0].speaker, tuple(group), following))
    return turns


def read_pcm16(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{path}: expected 16 kHz mono PCM16")
        return wav.readframes(wav.getnframes())


def turn_audio(pcm: bytes, turn: SpeakerTurn) -> bytes:
    """The turn as spoken: from its first word to its last (the transcript's times)."""
    start, end = round(turn.start_s * RATE) * 2, round(turn.end_s * RATE) * 2
    return pcm[start:end]


def recorded_turns() -> list[tuple[SpeakerTurn, bytes]]:
    """Every finished speaker turn of the sample with its audio (16 kHz PCM16)."""
    directory = sample_dir()
    pcm = read_pcm16(directory / "sample.wav")
    turns = speaker_turns(parse_stm((directory / "sample.stm").read_text()))
    return [(t, turn_audio(pcm, t)) for t in turns if t.next_start_s is not None]
