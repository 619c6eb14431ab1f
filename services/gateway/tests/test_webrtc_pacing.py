"""The WebRTC transport's own clock, without a network: the outbound track hands out one frame per
20 ms slot (queued audio or silence) and each slot is a ``Played`` tick; marks follow their
audio; clear empties the queue; live audio drops what a starved loop could not send in time; a
caller who sends nothing (DTX) still yields silent frames so the endpoint comes."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from trunkline.gateway.transports.base import AudioIn, MarkEcho, Played, TransportEvent
from trunkline.gateway.transports.webrtc import WebRtcTransport
from trunkline.gateway.transports.webrtc_media import PacedTrack
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

FRAME_48K = 1920  # 20 ms of 48 kHz mono PCM16


async def pull(track: PacedTrack, clock: FakeClock) -> AudioFrame:
    """One ``recv``, advancing the fake clock until its slot comes."""
    task = asyncio.ensure_future(track.recv())
    for _ in range(100):
        await asyncio.sleep(0)
        if task.done():
            return task.result()
        await clock.advance_and_settle(0.005)
    raise AssertionError("recv never returned")


def pcm_of(frame: AudioFrame) -> bytes:
    return bytes(frame.to_ndarray().astype("<i2").tobytes())


async def test_the_track_paces_queued_audio_then_silence_and_echoes_marks_in_order() -> None:
    clock = FakeClock(10.0)
    played: list[float] = []
    marks: list[tuple[str, int]] = []
    track = PacedTrack(
        clock,
        48000,
        on_played=lambda: played.append(clock.now()),
        on_mark=lambda name: marks.append((name, len(played))),
    )
    track.push(b"\x01\x00" * (FRAME_48K // 2) * 2 + b"\x02\x00" * 100)  # 2 frames + a partial
    track.mark("c0")
    track.push(b"\x03\x00" * (FRAME_48K // 2))
    frames = [await pull(track, clock) for _ in range(5)]
    assert [pcm_of(f)[:2] for f in frames] == [
        b"\x01\x00",
        b"\x01\x00",
        b"\x02\x00",
        b"\x03\x00",
        b"\x00\x00",
    ]
    assert pcm_of(frames[2])[200:] == bytes(FRAME_48K - 200)  # the partial frame padded at the mark
    assert [f.pts for f in frames] == [0, 960, 1920, 2880, 3840]
    assert frames[0].sample_rate == 48000
    assert played == pytest.approx([10.0, 10.02, 10.04, 10.06, 10.08], abs=0.006)
    assert marks == [("c0", 3)]  # echoed once the three frames before it were handed out
    assert track.frames_played == 4
    assert track.silent_frames == 1


async def test_clear_drops_queued_audio_and_live_audio_drops_skipped_slots() -> None:
    clock = FakeClock(0.0)
    track = PacedTrack(clock, 16000)
    track.push(bytes(640) * 10)
    track.clear()
    assert track.queued_frames == 0
    live = PacedTrack(clock, 16000, max_catch_up=2, drop_late=True)
    await pull(live, clock)
    live.push(b"".join(bytes([i, 0]) * 320 for i in range(1, 21)))  # 20 frames, numbered
    clock.advance(0.2)  # a stall: 10 slots, 2 may be caught up, 8 are skipped
    frame = await pull(live, clock)
    assert live.pacer.skipped == 8
    assert live.late_frames == 8
    assert pcm_of(frame)[:2] == bytes([9, 0])  # the 8 late frames were dropped, not delayed
    assert live.queued_frames == 11


class MuteAfter(MediaStreamTrack):
    """A caller's track: a few frames of audio, then nothing (DTX), never ending."""

    kind = "audio"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.left = frames
        self.pts = 0

    async def recv(self) -> AudioFrame:
        if self.left == 0:
            await asyncio.Event().wait()  # silence on the wire: nothing arrives
            raise MediaStreamError
        self.left -= 1
        samples = np.full((1, 960 * 2), 1000, dtype="<i2")
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.time_base = fractions.Fraction(1, 48000)
        frame.pts = self.pts
        self.pts += 960
        return frame


async def test_a_mute_caller_still_gives_silent_frames_at_the_transports_pace() -> None:
    clock = FakeClock(0.0)
    transport = WebRtcTransport(clock, gap_s=0.1)
    events: list[TransportEvent] = []

    async def collect() -> None:
        async for event in transport.events():
            events.append(event)

    collector = asyncio.ensure_future(collect())
    transport.pc.emit("track", MuteAfter(3))
    await clock.advance_and_settle(0.0)
    for _ in range(20):  # 400 ms of the outbound clock
        await pull(transport.track, clock)
    await clock.advance_and_settle(0.0)
    heard = [e for e in events if isinstance(e, AudioIn)]
    loud = [e for e in heard if any(e.pcm)]
    silent = [e for e in heard if not any(e.pcm)]
    assert len(loud) >= 2  # the caller's three frames (the resampler holds a few samples)
    assert sum(e.frames for e in events if isinstance(e, Played)) == 20
    # mute from ~0 s: after 100 ms without audio, one silent frame per 20 ms slot
    assert 13 <= len(silent) <= 16, len(silent)
    assert transport.filled_frames == len(silent)
    assert not [e for e in events if isinstance(e, MarkEcho)]
    collector.cancel()
    await asyncio.gather(collector, return_exceptions=True)
    await transport.close()
