"""Plivo audio streams (JSON over WebSocket), parsed and built without I/O.

Inbound: ``start``, ``media``, ``stop``, and ``playedStream`` (a checkpoint was played; it plays
the role of Twilio's mark echo); ``clearedAudio`` is recognised and ignored. Outbound:
``playAudio``, ``clearAudio``, ``checkpoint``. Audio is base64 mu-law 8 kHz mono.
"""

from __future__ import annotations

import json
from typing import Any

from trunkline.gateway.transports.messages import (
    BadMessageError,
    Ignored,
    Mark,
    Media,
    MediaMessage,
    Start,
    Stop,
)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadMessageError(f"{what} is not an object")
    return value


def _string(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadMessageError(f"{what}.{key} missing or not a string")
    return value


def parse(text: str | bytes) -> MediaMessage:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadMessageError(f"not JSON: {exc}") from None
    message = _object(data, "message")
    event = message.get("event")
    if not isinstance(event, str):
        raise BadMessageError("no 'event' field")
    match event:
        case "start":
            start = _object(message.get("start"), "start")
            fmt = start.get("mediaFormat") or {}
            encoding = str(fmt.get("encoding", "audio/x-mulaw")) if isinstance(fmt, dict) else ""
            rate = fmt.get("sampleRate", 8000) if isinstance(fmt, dict) else 0
            if encoding != "audio/x-mulaw" or int(rate) != 8000:
                raise BadMessageError(f"unsupported media format {encoding!r} at {rate!r} Hz")
            return Start(
                stream_id=_string(start, "streamId", "start"),
                call_id=_string(start, "callId", "start"),
                account_id=str(start.get("accountId", "")),
            )
        case "media":
            media = _object(message.get("media"), "media")
            return Media(
                payload=_string(media, "payload", "media"), track=str(media.get("track", "inbound"))
            )
        case "playedStream":
            return Mark(_string(message, "name", "playedStream"))
        case "stop":
            return Stop()
        case "clearedAudio" | "dtmf":
            return Ignored(event)
        case _:
            raise BadMessageError(f"unknown event {event!r}")


def play_audio(payload: str) -> str:
    return json.dumps(
        {
            "event": "playAudio",
            "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": payload},
        }
    )


def checkpoint(stream_id: str, name: str) -> str:
    return json.dumps({"event": "checkpoint", "streamId": stream_id, "name": name})


def clear_audio(stream_id: str) -> str:
    return json.dumps({"event": "clearAudio", "streamId": stream_id})
