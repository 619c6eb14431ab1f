"""The transport interface the call session talks to (Twilio, Plivo, browser WebRTC; LiveKit
implements it later).

A transport owns its outbound pacing: ``events`` yields a ``Played`` whenever its outbound clock
moves on (a steady 20 ms pacer, or the pull of a media track), whether or not the caller sends
anything meanwhile; reply audio is released against those ticks, never against caller frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallStart:
    """What a transport learned when the stream started."""

    call_id: str
    stream_id: str
    tenant: str
    agent: str
    caller: str = ""
    callee: str = ""
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioIn:
    """One 20 ms 16 kHz PCM16 frame from the caller (640 bytes)."""

    pcm: bytes
    received_at: float


@dataclass(frozen=True, slots=True)
class MarkEcho:
    """The far end has played everything sent before the mark ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Played:
    """The transport's outbound clock moved on by ``frames`` 20 ms frames (the far end played, or
    is ready for, that many)."""

    frames: int = 1


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str


DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key (Twilio/Plivo ``dtmf`` messages, LiveKit SIP DTMF)."""

    digit: str
    received_at: float


TransportEvent = AudioIn | MarkEcho | Played | Hangup | Dtmf


class Transport(ABC):
    """One live call's media. ``events`` ends after a ``Hangup`` (or when the peer goes away)."""

    name: str = "transport"
    out_rate: int = 16000  # sample rate of the PCM16 that ``send_audio`` takes (TTS renders at it)

    @abstractmethod
    def events(self) -> AsyncIterator[TransportEvent]: ...

    async def deliver(self, put: Callable[[TransportEvent], None]) -> bool:
        """Hand each event to ``put`` as it comes, in order, until a ``Hangup`` (True) or the
        end of the stream (False). This default iterates :meth:`events`; a transport may put
        its events straight into the session's inbox instead (no queue and task in between)."""
        async for event in self.events():
            put(event)
            if isinstance(event, Hangup):
                return True
        return False

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None:
        """Queue PCM16 agent audio at ``out_rate`` for playback (sent as the caller hears it: the
        turn machine releases it paced by this transport's ``Played`` ticks)."""

    @abstractmethod
    async def send_mark(self, name: str) -> None:
        """Ask for a ``MarkEcho(name)`` once everything sent so far has been played."""

    @abstractmethod
    async def clear(self) -> None:
        """Drop every queued, unplayed frame now (barge-in)."""

    @abstractmethod
    async def close(self) -> None: ...
