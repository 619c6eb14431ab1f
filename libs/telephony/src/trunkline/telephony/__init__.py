"""Telephony media-stream authentication shared by both ends of the Twilio/Plivo protocols:
the gateway checks what the simulated caller (and Twilio itself) signs."""

from trunkline.telephony.auth import (
    DEFAULT_ROLE,
    operator_token,
    stream_token,
    twilio_signature,
    valid_operator_token,
    valid_stream_token,
    valid_twilio_signature,
)

__all__ = [
    "DEFAULT_ROLE",
    "operator_token",
    "stream_token",
    "twilio_signature",
    "valid_operator_token",
    "valid_stream_token",
    "valid_twilio_signature",
]
