"""The caller's side of Twilio Media Streams: what Twilio sends, and what it accepts back.

Twilio -> server: ``connected``, ``start``, ``media`` (track ``inbound``, base64 mu-law 8 kHz,
20 ms per message), ``mark`` (echo of a server mark once the audio before it was played),
``stop``. Server -> Twilio: ``media``, ``mark``, ``clear``. Every message Twilio sends after
``connected`` carries a string ``sequenceNumber`` counting from 1. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class ProtocolError(ValueError):
    """A server message the caller cannot use; the text says why."""


@dataclass(frozen=True, slots=True)
class AgentMedia:
    """Audio to play: mu-law 8 kHz bytes."""

    mulaw: bytes


@dataclass(frozen=True, slots=True)
class AgentMark:
    name: str


@dataclass(frozen=True, slots=True)
class AgentClear:
    pass


ServerMessage = AgentMedia | AgentMark | AgentClear


def parse_server(text: str | bytes) -> ServerMessage:
    """One message from the media-stream server -> a typed message, or ``ProtocolError``."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("message is not an object")
    event = data.get("event")
    if event == "media":
        media = data.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            raise ProtocolError("media.payload missing or not a string")
        try:
            return AgentMedia(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"media.payload is not base64: {exc}") from None
    if event == "mark":
        mark = data.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            raise ProtocolError("mark.name missing or not a string")
        return AgentMark(name)
    if event == "clear":
        return AgentClear()
    raise ProtocolError(f"unknown event {event!r}")


class TwilioMessages:
    """Builds the messages of one stream, numbering them as Twilio does."""

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self._sequence = 0
        self._chunk = 0

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _dump(self, message: dict[str, Any]) -> str:
        return json.dumps(message, separators=(",", ":"))

    def connected(self) -> str:
        return self._dump({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: dict[str, str]) -> str:
        return self._dump(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(custom_parameters),
                    "mediaFormat": dict(MEDIA_FORMAT),
                },
                "streamSid": self.stream_sid,
            }
        )

    def media(self, mulaw: bytes, timestamp_ms: int) -> str:
        """One inbound chunk; ``timestamp_ms`` is stream time of its first sample."""
        self._chunk += 1
        return self._dump(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(mulaw).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    def mark(self, name: str) -> str:
        return self._dump(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return self._dump(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )
