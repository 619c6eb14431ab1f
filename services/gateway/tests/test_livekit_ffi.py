"""The narrowed FFI subscription of a LiveKit room (``transports/livekit_ffi.py``): a room's
filter lets room events through and leaves per-frame callbacks (captures, media streams) out,
on top of what the SDK's own filter decides; a room that is not connected is left as it is,
with a warning. (The connected case runs in ``test_livekit_call.py`` against a real server.)"""

from __future__ import annotations

import logging

import pytest
from livekit import rtc
from livekit.rtc._proto import ffi_pb2

from trunkline.gateway.transports.livekit_ffi import _room_events, quiet_room

pytestmark = pytest.mark.unit


def event(kind: str) -> ffi_pb2.FfiEvent:
    message = ffi_pb2.FfiEvent()
    getattr(message, kind).SetInParent()
    return message


def test_room_events_pass_and_per_frame_callbacks_do_not() -> None:
    sdk_filter = lambda e: e.WhichOneof("message") not in ("audio_stream_event",)  # noqa: E731
    wanted = _room_events(sdk_filter)
    assert wanted(event("room_event"))
    assert wanted(event("publish_track"))
    assert not wanted(event("capture_audio_frame"))
    assert not wanted(event("audio_stream_event"))
    assert not wanted(event("video_stream_event"))
    assert not _room_events(lambda e: False)(event("room_event"))  # the SDK's verdict stands
    assert _room_events(None)(event("room_event"))


async def test_a_room_not_connected_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not quiet_room(rtc.Room())
    assert "cannot narrow" in caplog.text
