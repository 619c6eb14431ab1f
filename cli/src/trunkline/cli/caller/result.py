"""The outcome of one simulated call, JSON-serialisable with :meth:`CallResult.to_dict`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trunkline.cli.caller.latency import percentile


@dataclass(frozen=True, slots=True)
class GreetingResult:
    first_audio_ms: float | None  # stream start -> first voiced agent frame received
    played_ms: float | None


@dataclass(frozen=True, slots=True)
class TurnResult:
    index: int
    source: str  # "tts" | "wav"
    caller_text: str | None
    caller_audio_ms: float
    speech_start_ms: float | None  # caller onset, stream time
    speech_end_ms: float | None  # last voiced caller frame sent, stream time
    voice_to_voice_ms: float | None
    reply_played_ms: float | None  # how long the agent's reply played (cut short by a clear)
    reply_received_ms: float  # agent audio received for the reply
    barge_in_at_ms: float | None  # the scenario's setting: speak this far into the reply
    agent_was_speaking: bool | None  # at the caller's onset (barge-in turns)
    barge_in_clear_ms: float | None  # onset -> clear received
    barge_in_stop_ms: float | None  # onset -> agent speech stopped playing
    outcome: str  # "answered" | "no reply"
    agent_text: str | None = None


@dataclass(frozen=True, slots=True)
class CallResult:
    call_sid: str
    stream_sid: str
    url: str
    started_at: str  # wall clock, ISO 8601 UTC
    duration_ms: float
    greeting: GreetingResult | None
    turns: list[TurnResult]
    frames_sent: int
    max_send_late_ms: float  # worst lateness of a media frame against its 20 ms slot
    marks_received: int
    marks_echoed: int
    clears: int
    bad_messages: list[str] = field(default_factory=list)
    ended_by: str = "caller"  # or why the server ended it

    def latencies(self) -> list[float]:
        return [t.voice_to_voice_ms for t in self.turns if t.voice_to_voice_ms is not None]

    def summary(self) -> dict[str, float | None]:
        v2v = self.latencies()
        stops = [t.barge_in_stop_ms for t in self.turns if t.barge_in_stop_ms is not None]
        return {
            "voice_to_voice_p50_ms": percentile(v2v, 50),
            "voice_to_voice_p95_ms": percentile(v2v, 95),
            "barge_in_stop_p50_ms": percentile(stops, 50),
            "barge_in_stop_p95_ms": percentile(stops, 95),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data
