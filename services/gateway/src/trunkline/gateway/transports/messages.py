"""Media-stream messages common to the WebSocket telephony dialects (Twilio, Plivo)."""

from __future__ import annotations

from dataclasses import dataclass, field


class BadMessageError(ValueError):
    """A message that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    stream_id: str
    call_id: str
    account_id: str
    custom: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True)
class Media:
    payload: str
    track: str = "inbound"


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Ignored:
    event: str


MediaMessage = Connected | Start | Media | Mark | Stop | Ignored
