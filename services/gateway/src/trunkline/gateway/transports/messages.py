"""Media-stream messages common to the WebSocket telephony dialects (Twilio, Plivo)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


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
class Digit:
    """A DTMF key the caller pressed."""

    digit: str


@dataclass(frozen=True, slots=True)
class Ignored:
    event: str


MediaMessage = Connected | Start | Media | Mark | Stop | Digit | Ignored


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or ``BadMessageError`` naming ``what``."""
    if not isinstance(value, dict):
        raise BadMessageError(f"{what} is not an object")
    return value


def json_string(obj: dict[str, Any], key: str, what: str) -> str:
    """A non-empty string field, or ``BadMessageError`` naming ``what.key``."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadMessageError(f"{what}.{key} missing or not a string")
    return value


def load_message(text: str | bytes) -> dict[str, Any]:
    """One WebSocket text message as a JSON object with a string ``event`` field."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadMessageError(f"not JSON: {exc}") from None
    message = json_object(data, "message")
    if not isinstance(message.get("event"), str):
        raise BadMessageError("no 'event' field")
    return message


def dtmf_digit(message: dict[str, Any]) -> Digit:
    """The ``dtmf`` message's key (``{"dtmf": {"digit": "5"}}``, Twilio and Plivo alike)."""
    digit = json_string(json_object(message.get("dtmf"), "dtmf"), "digit", "dtmf")
    if len(digit) != 1 or digit not in "0123456789*#ABCD":
        raise BadMessageError(f"dtmf.digit {digit!r} is not one of 0-9, *, #, A-D")
    return Digit(digit)
