"""Plivo audio streams (JSON over WebSocket), parsed and built without I/O.

Inbound: ``start``, ``media``, ``stop``, and ``playedStream`` (a checkpoint was played; it plays
the role of Twilio's mark echo); ``clearedAudio`` is recognised and ignored. Outbound:
``playAudio``, ``clearAudio``, ``checkpoint``. Audio is base64 mu-law 8 kHz mono.
"""

from __future__ import annotations

import json

from trunkline.gateway.transports.messages import (
    BadMessageError,
    Ignored,
    Mark,
    Media,
    MediaMessage,
    Start,
    Stop,
    dtmf_digit,
    json_object,
    json_string,
    load_message,
)


def parse(text: str | bytes) -> MediaMessage:
    message = load_message(text)
    event = message["event"]
    match event:
        case "start":
            start = json_object(message.get("start"), "start")
            fmt = start.get("mediaFormat") or {}
            encoding = str(fmt.get("encoding", "audio/x-mulaw")) if isinstance(fmt, dict) else ""
            rate = fmt.get("sampleRate", 8000) if isinstance(fmt, dict) else 0
            if encoding != "audio/x-mulaw" or int(rate) != 8000:
                raise BadMessageError(f"unsupported media format {encoding!r} at {rate!r} Hz")
            return Start(
                stream_id=json_string(start, "streamId", "start"),
                call_id=json_string(start, "callId", "start"),
                account_id=str(start.get("accountId", "")),
            )
        case "media":
            media = json_object(message.get("media"), "media")
            return Media(
                payload=json_string(media, "payload", "media"),
                track=str(media.get("track", "inbound")),
            )
        case "playedStream":
            return Mark(json_string(message, "name", "playedStream"))
        case "stop":
            return Stop()
        case "dtmf":
            return dtmf_digit(message)
        case "clearedAudio":
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
