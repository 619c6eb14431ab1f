"""Telephony media streams over an aiohttp WebSocket (Twilio and Plivo dialects).

Malformed or unknown messages are logged with the reason and counted; they never end the call.
Reply audio comes at 8 kHz (TTS renders at the telephony rate: one resample on the way out) and is
only mu-law encoded here. The far end buffers and plays in real time, so the transport's outbound
clock is a steady 20 ms pacer (``Played`` ticks), independent of the caller's media messages:
the web app's shared :class:`PlayoutClock` when given (one task for every call), else a task of
the call's own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from trunkline.audio import TELEPHONY_RATE, InboundMulaw8k, OutboundMulaw8k
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.pacer import Pacer
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.transports import plivo_protocol, twilio_protocol
from trunkline.gateway.transports.base import (
    AudioIn,
    Dtmf,
    Hangup,
    MarkEcho,
    Transport,
    TransportEvent,
)
from trunkline.gateway.transports.messages import (
    BadMessageError,
    Connected,
    Digit,
    Ignored,
    Mark,
    Media,
    MediaMessage,
    Start,
    Stop,
)
from trunkline.gateway.transports.pacing import PlayoutClock, playout_ticks, with_clock, with_ticks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    parse: Callable[[str | bytes], MediaMessage]
    media: Callable[[str, str], str]  # (stream id, payload)
    mark: Callable[[str, str], str]  # (stream id, name)
    clear: Callable[[str], str]  # (stream id)


TWILIO = Dialect(
    "twilio",
    twilio_protocol.parse,
    twilio_protocol.media,
    twilio_protocol.mark,
    twilio_protocol.clear,
)
PLIVO = Dialect(
    "plivo",
    plivo_protocol.parse,
    lambda _stream, payload: plivo_protocol.play_audio(payload),
    plivo_protocol.checkpoint,
    plivo_protocol.clear_audio,
)


class MediaStreamTransport(Transport):
    """One call's media WebSocket. Call :meth:`wait_start` first, then hand it to a session."""

    out_rate = TELEPHONY_RATE

    def __init__(
        self,
        ws: web.WebSocketResponse,
        dialect: Dialect,
        clock: Clock,
        metrics: GatewayMetrics | None = None,
        playout: PlayoutClock | None = None,
    ) -> None:
        self.ws = ws
        self.dialect = dialect
        self.name = dialect.name
        self.clock = clock
        self.metrics = metrics
        self.start: Start | None = None
        self._inbound = InboundMulaw8k()
        self._outbound = OutboundMulaw8k(TELEPHONY_RATE)
        self.pacer = Pacer()
        self.playout = playout

    @property
    def stream_id(self) -> str:
        return "" if self.start is None else self.start.stream_id

    def _bad(self, reason: str) -> None:
        log.warning("%s stream %s: message dropped: %s", self.name, self.stream_id, reason)
        if self.metrics is not None:
            self.metrics.bad_messages.add(1, {"transport": self.name, "reason": reason[:40]})

    async def _messages(self) -> AsyncIterator[MediaMessage]:
        async for msg in self.ws:
            if msg.type is WSMsgType.TEXT:
                try:
                    yield self.dialect.parse(msg.data)
                except BadMessageError as exc:
                    self._bad(str(exc))
            elif msg.type is WSMsgType.BINARY:
                self._bad("binary frame where JSON text was expected")
            elif msg.type is WSMsgType.ERROR:
                self._bad(f"websocket error: {self.ws.exception()!r}")
                return

    async def wait_start(self) -> Start | None:
        """Read until the ``start`` message; None when the stream ends before it."""
        async for message in self._messages():
            match message:
                case Start():
                    self.start = message
                    return message
                case Connected() | Ignored() | Digit():
                    continue
                case _:
                    self._bad(f"{type(message).__name__.lower()} before start")
        return None

    def events(self) -> AsyncIterator[TransportEvent]:
        if self.playout is not None:
            return with_clock(self._inbound_events(), self.playout, self.pacer)
        return with_ticks(self._inbound_events(), playout_ticks(self.clock, self.pacer))

    async def deliver(self, put: Callable[[TransportEvent], None]) -> bool:
        """With the shared clock: its ticks go to ``put`` from the clock's task and the
        caller's messages from this one, no queue in between (a task hop less per frame)."""
        if self.playout is None:
            return await super().deliver(put)
        leave = self.playout.subscribe(self.pacer, put)
        try:
            async for event in self._inbound_events():
                put(event)
                if isinstance(event, Hangup):
                    return True
            return False
        finally:
            leave()

    async def _inbound_events(self) -> AsyncIterator[TransportEvent]:
        async for message in self._messages():
            match message:
                case Media(payload=payload, track=track):
                    if track not in ("inbound", "inbound_track"):
                        continue
                    try:
                        frames = self._inbound.push(payload)
                    except ValueError as exc:
                        self._bad(str(exc))
                        continue
                    now = self.clock.now()
                    for frame in frames:
                        yield AudioIn(frame.pcm, now)
                case Mark(name=name):
                    yield MarkEcho(name)
                case Digit(digit=digit):
                    yield Dtmf(digit, self.clock.now())
                case Stop():
                    yield Hangup("stream stopped")
                    return
                case Start():
                    self._bad("second start on one stream")
                case Connected() | Ignored():
                    continue
        yield Hangup("websocket closed")

    async def send_audio(self, pcm: bytes) -> None:
        for payload in self._outbound.push(pcm):
            await self.ws.send_str(self.dialect.media(self.stream_id, payload))

    async def send_mark(self, name: str) -> None:
        await self.ws.send_str(self.dialect.mark(self.stream_id, name))

    async def clear(self) -> None:
        await self.ws.send_str(self.dialect.clear(self.stream_id))
        self._outbound = OutboundMulaw8k(TELEPHONY_RATE)  # drop a partial payload

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
