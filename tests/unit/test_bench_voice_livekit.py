"""The LiveKit leg of bench-voice: where a phrase's voice starts and ends, and when the agent's
speech that a barge-in interrupted stopped, as the caller heard it."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.voice.livekit_caller import Room, ms, stopped_at, voiced_span
from trunkline.gateway.livekit_rooms import LiveKitKey

pytestmark = pytest.mark.unit

FRAME = 320  # samples in 20 ms at 16 kHz


def frames(*levels: float) -> bytes:
    """20 ms frames of a 440 Hz tone, one per level (0: digital silence)."""
    t = np.arange(FRAME) / 16000
    tone = np.sin(2 * np.pi * 440 * t)
    return b"".join((level * tone).astype("<i2").tobytes() for level in levels)


def test_the_voiced_span_skips_leading_and_trailing_quiet_frames() -> None:
    pcm = frames(0, 30, 8000, 0, 9000, 100, 0)  # 30 and 100 are below -45 dBFS
    assert voiced_span(pcm) == (2, 4)


def test_a_silent_phrase_has_no_voiced_span() -> None:
    assert voiced_span(frames(0, 20, 0)) is None
    assert voiced_span(b"") is None


def loud(start: float, end: float) -> list[float]:
    """Arrival times of loud 20 ms frames heard back to back from ``start`` to ``end``."""
    return [round(start + 0.02 * i, 3) for i in range(round((end - start) / 0.02))]


def test_the_stop_is_the_end_of_the_last_loud_frame_before_a_pause() -> None:
    heard = loud(1.0, 2.14) + loud(3.5, 4.0)  # interrupted at 2.14, the next reply at 3.5
    assert stopped_at(heard, onset=2.0) == pytest.approx(2.14)


def test_short_pauses_between_words_do_not_end_the_agents_speech() -> None:
    heard = loud(1.0, 2.1) + loud(2.4, 2.6) + loud(4.0, 4.2)  # a 0.3 s pause after the onset
    assert stopped_at(heard, onset=2.05) == pytest.approx(2.6)


def test_no_stop_when_the_agent_was_not_speaking_at_the_onset() -> None:
    heard = loud(1.0, 1.4) + loud(3.0, 3.4)
    assert stopped_at(heard, onset=2.0) is None  # quiet for 0.6 s before the onset


def test_milliseconds_between_two_times_or_none() -> None:
    assert ms(1.0, 1.25) == pytest.approx(250.0)
    assert ms(None, 1.0) is None
    assert ms(1.0, None) is None


def test_a_room_names_the_agent_and_its_call_id_is_the_gateways() -> None:
    room = Room("ws://127.0.0.1:1", LiveKitKey("key", "secret" * 6, frozenset({"acme"})), "acme",
                "acme-dental")  # fmt: skip
    name, token = room.new()
    assert name.startswith("acme.acme-dental.")
    assert token
    assert room.call_id(name) == "livekit-" + name.replace(".", "~")
