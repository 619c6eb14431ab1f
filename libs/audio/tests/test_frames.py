from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.audio import FRAME_BYTES, AudioFrame, Framer, frame_bytes

pytestmark = pytest.mark.unit


def test_frame_size_is_640_bytes_at_16k() -> None:
    assert FRAME_BYTES == 640
    assert frame_bytes(8000, 20) == 320
    assert frame_bytes(22050, 20) == 882
    with pytest.raises(ValueError, match="whole number of samples"):
        frame_bytes(22050, 1)


@given(st.lists(st.binary(max_size=1500), max_size=20))
def test_framing_never_loses_or_invents_bytes(chunks: list[bytes]) -> None:
    framer = Framer()
    frames = [f for c in chunks for f in framer.push(c)]
    data = b"".join(chunks)
    assert all(len(f.pcm) == 640 for f in frames)
    assert len(frames) == len(data) // 640
    assert framer.pending == len(data) % 640
    last = framer.flush()
    out = b"".join(f.pcm for f in frames)
    if last is None:
        assert out == data
    else:
        assert len(last.pcm) == 640
        out += last.pcm
        assert out == data + b"\0" * (len(out) - len(data))
        assert len(out) - len(data) < 640
    assert framer.pending == 0


def test_sequence_and_timestamps_count_frames() -> None:
    framer = Framer(start_sequence=5)
    frames = framer.push(b"\1" * (640 * 3 + 10))
    last = framer.flush()
    assert last is not None
    frames.append(last)
    assert [f.sequence for f in frames] == [5, 6, 7, 8]
    assert [f.timestamp_ms for f in frames] == [100, 120, 140, 160]
    assert all(f.duration_ms == 20.0 and f.sample_rate == 16000 for f in frames)
    assert framer.flush() is None


def test_audio_frame_is_frozen_and_validated() -> None:
    frame = AudioFrame(pcm=b"\0" * 640)
    assert frame.samples == 320
    with pytest.raises(AttributeError):
        frame.sequence = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="even byte count"):
        AudioFrame(pcm=b"\0" * 3)
    with pytest.raises(ValueError, match="even byte count"):
        AudioFrame(pcm=b"")
    with pytest.raises(ValueError, match="sample_rate"):
        AudioFrame(pcm=b"\0\0", sample_rate=0)
