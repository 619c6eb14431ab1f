"""What the caller says: turns from flags or a YAML/JSON scenario file, prepared as audio.

Scenario file::

    turns:
      - say: "Hi, when are you open on Saturday?"
      - wav: clips/account.wav          # relative to the file
        text: "My account number is 4417"  # shown in the conversation (optional)
      - say: "Actually, never mind that."
        barge_in_ms: 600                # start 600 ms into the agent's reply instead of waiting
        pause_ms: 300                   # silence before speaking (after the reply ended)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trunkline.cli.caller.audio import read_wav_mulaw8k

DEFAULT_PAUSE_MS = 400.0


class ScenarioError(ValueError):
    """A scenario that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    text: str | None = None  # synthesized when no wav is given; else only shown
    wav: Path | None = None
    barge_in_ms: float | None = None
    pause_ms: float = DEFAULT_PAUSE_MS

    def __post_init__(self) -> None:
        if self.text is None and self.wav is None:
            raise ScenarioError("a turn needs 'say' text or a 'wav' file")
        if self.barge_in_ms is not None and self.barge_in_ms < 0:
            raise ScenarioError("barge_in_ms must be >= 0")
        if self.pause_ms < 0:
            raise ScenarioError("pause_ms must be >= 0")

    @property
    def source(self) -> str:
        return "wav" if self.wav is not None else "tts"


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    turn: CallerTurn
    mulaw: bytes  # 8 kHz mu-law, ready to stream


def _turn(item: Any, base: Path) -> CallerTurn:
    if isinstance(item, str):
        return CallerTurn(text=item)
    if not isinstance(item, dict):
        raise ScenarioError(f"a turn must be a mapping or a string, got {item!r}")
    unknown = set(item) - {"say", "text", "wav", "barge_in_ms", "pause_ms"}
    if unknown:
        raise ScenarioError(f"unknown turn keys {sorted(unknown)}")
    wav = item.get("wav")
    text = item.get("say", item.get("text"))
    try:
        return CallerTurn(
            text=None if text is None else str(text),
            wav=None if wav is None else (base / str(wav)),
            barge_in_ms=None if item.get("barge_in_ms") is None else float(item["barge_in_ms"]),
            pause_ms=float(item.get("pause_ms", DEFAULT_PAUSE_MS)),
        )
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"bad turn {item!r}: {exc}") from None


def load_scenario(path: Path) -> list[CallerTurn]:
    """Turns from a YAML (or JSON) file: a list, or a mapping with ``turns``."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    items = data.get("turns") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ScenarioError(f"{path}: expected a non-empty list of turns")
    return [_turn(item, path.parent) for item in items]


def prepare_wavs(turns: Sequence[CallerTurn]) -> dict[int, bytes]:
    """Audio of the WAV turns, by turn index (read before dialling: no file I/O mid-call)."""
    return {i: read_wav_mulaw8k(t.wav) for i, t in enumerate(turns) if t.wav is not None}
