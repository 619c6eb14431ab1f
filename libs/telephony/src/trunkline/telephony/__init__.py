"""Telephony media-stream authentication shared by both ends of the Twilio/Plivo protocols:
the gateway checks what the simulated caller (and Twilio itself) signs."""

from trunkline.telephony.auth import (
    DEFAULT_ROLE,
    stream_token,
    twilio_signature,
    valid_stream_token,
    valid_twilio_signature,
)
from trunkline.telephony.join import JoinGrant, sign_join, verify_join

__all__ = [
    "DEFAULT_ROLE",
    "JoinGrant",
    "sign_join",
    "stream_token",
    "twilio_signature",
    "valid_stream_token",
    "valid_twilio_signature",
    "verify_join",
]
