"""Twilio Media Streams messages (JSON over WebSocket), parsed and built without I/O.

Inbound: ``connected``, ``start``, ``media``, ``mark``, ``stop``, ``dtmf`` (the key pressed).
Outbound: ``media``, ``mark``, ``clear``. Audio is base64 mu-law 8 kHz mono.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import quoteattr

from trunkline.gateway.transports.messages import (
    BadMessageError,
    Connected,
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
    """One WebSocket text message -> a typed message, or ``BadMessageError`` with the reason."""
    message = load_message(text)
    event = message["event"]
    match event:
        case "connected":
            return Connected()
        case "start":
            start = json_object(message.get("start"), "start")
            fmt = start.get("mediaFormat") or {}
            custom = start.get("customParameters") or {}
            if not isinstance(custom, dict):
                raise BadMessageError("start.customParameters is not an object")
            encoding = str(fmt.get("encoding", "audio/x-mulaw")) if isinstance(fmt, dict) else ""
            rate = fmt.get("sampleRate", 8000) if isinstance(fmt, dict) else 0
            if encoding != "audio/x-mulaw" or rate != 8000:
                raise BadMessageError(f"unsupported media format {encoding!r} at {rate!r} Hz")
            return Start(
                stream_id=json_string(start, "streamSid", "start"),
                call_id=json_string(start, "callSid", "start"),
                account_id=str(start.get("accountSid", "")),
                custom={str(k): str(v) for k, v in custom.items()},
            )
        case "media":
            media = json_object(message.get("media"), "media")
            return Media(
                payload=json_string(media, "payload", "media"),
                track=str(media.get("track", "inbound")),
            )
        case "mark":
            return Mark(json_string(json_object(message.get("mark"), "mark"), "name", "mark"))
        case "stop":
            return Stop()
        case "dtmf":
            return dtmf_digit(message)
        case _:
            raise BadMessageError(f"unknown event {event!r}")


def media(stream_sid: str, payload: str) -> str:
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def twiml_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """TwiML that connects the call to a bidirectional media stream with custom parameters."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream>"
        "</Connect></Response>"
    )
