"""A Python LiveKit participant that plays a caller's part (tests, benchmarks): a microphone track
fed with PCM (recorded phrases) at real time, the agent's audio recorded with arrival times
(:class:`~trunkline.gateway.transports.webrtc_peer.Heard`, 16 kHz mono)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque

import numpy as np
from livekit import rtc

from trunkline.gateway.transports.livekit_ffi import quiet_room
from trunkline.gateway.transports.webrtc_peer import Heard

HEARD_RATE = 16000
HEARD_FRAME = 320 * 2  # 20 ms at 16 kHz, bytes
LOUD_DBFS = -50.0


def _dbfs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    return 20.0 * math.log10(max(rms, 1e-9) / 32768)


class LiveKitCaller:
    """Join with :meth:`join`; ``say`` queues speech (PCM16 mono at ``rate``), silence otherwise;
    the agent's track lands in ``heard``. ``video``: also publish a (black) camera track."""

    def __init__(self, rate: int = 16000, *, video: bool = False, lead_ms: int = 0) -> None:
        self.rate = rate
        self.lead_s = lead_ms / 1000  # >0: keep this much queued in the source (steady sending)
        self.frame_bytes = rate // 50 * 2
        self.room = rtc.Room()
        self.heard = Heard()
        self.loud_times: list[float] = []  # arrival of each heard frame above ``LOUD_DBFS``
        self.said_times: list[float] = []  # when each queued speech frame went to the source
        self.agent_track: rtc.RemoteAudioTrack | None = None  # (its stats: jitter buffer)
        self.video = video
        queue_ms = max(60, (lead_ms // 10 + 4) * 10)
        self.source = rtc.AudioSource(rate, 1, queue_size_ms=queue_ms)
        self._frames: deque[bytes] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self.room.on("track_subscribed", self._on_track)

    async def join(self, url: str, token: str) -> None:
        await self.room.connect(url, token)
        quiet_room(self.room)  # many callers in one process: see livekit_ffi
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._tasks.append(asyncio.create_task(self._mic()))
        if self.video:
            video = rtc.VideoSource(64, 48)
            camera = rtc.LocalVideoTrack.create_video_track("camera", video)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
            await self.room.local_participant.publish_track(camera, options)
            self._tasks.append(asyncio.create_task(self._camera(video)))

    def say(self, pcm: bytes) -> float:
        """Queue ``pcm``; returns how long it takes to play (seconds). Its frames' capture times
        follow in ``said_times`` (frame ``i`` of this phrase at ``len(said_times)`` before + i,
        once no earlier phrase is still queued)."""
        step = self.frame_bytes
        for i in range(0, len(pcm), step):
            self._frames.append(pcm[i : i + step].ljust(step, b"\x00"))
        return len(self._frames) * 0.02

    def first_loud(self, after: float) -> float | None:
        """When the first loud frame at or after ``after`` arrived (None: none yet)."""
        i = bisect.bisect_left(self.loud_times, after)
        return self.loud_times[i] if i < len(self.loud_times) else None

    @property
    def last_loud(self) -> float | None:
        return self.loud_times[-1] if self.loud_times else None

    @property
    def speaking(self) -> bool:
        return bool(self._frames)

    @property
    def pending(self) -> int:
        """Frames queued by ``say`` that have not gone to the source yet (the next ``say``'s
        first frame will be ``said_times[len(said_times) + pending]``)."""
        return len(self._frames)

    async def _mic(self) -> None:
        if self.lead_s:
            await self._steady_mic()
            return
        start, count = time.monotonic(), 0
        silence = bytes(self.frame_bytes)
        while True:
            wait = start + count * 0.02 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._frames:
                pcm = self._frames.popleft()  # leaves once what the source holds has gone
                self.said_times.append(time.monotonic() + self.source.queued_duration)
            else:
                pcm = silence
            frame = rtc.AudioFrame(pcm, self.rate, 1, self.frame_bytes // 2)
            await self.source.capture_frame(frame)
            count += 1

    async def _steady_mic(self) -> None:
        """Keep ``lead_s`` of audio queued in the source: the SDK's native queue sends it at
        real time whatever this loop's jitter. A speech frame's ``said_times`` entry is when it
        starts leaving (now + what is queued ahead of it)."""
        silence = bytes(self.frame_bytes)
        while True:
            while self.source.queued_duration < self.lead_s:
                ahead = self.source.queued_duration
                if self._frames:
                    pcm = self._frames.popleft()
                    self.said_times.append(time.monotonic() + ahead)
                else:
                    pcm = silence
                frame = rtc.AudioFrame(pcm, self.rate, 1, self.frame_bytes // 2)
                await self.source.capture_frame(frame)
            await asyncio.sleep(0.01)

    async def _camera(self, source: rtc.VideoSource) -> None:
        frame = rtc.VideoFrame(64, 48, rtc.VideoBufferType.RGBA, bytes(64 * 48 * 4))
        while True:
            source.capture_frame(frame)
            await asyncio.sleep(0.1)

    def _on_track(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if isinstance(track, rtc.RemoteAudioTrack):
            self.agent_track = track
            self._tasks.append(asyncio.create_task(self._listen(track)))

    async def _listen(self, track: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=HEARD_RATE, num_channels=1, frame_size_ms=20
        )
        pending = bytearray()
        try:
            async for event in stream:
                pending += bytes(event.frame.data)
                now = time.monotonic()
                while len(pending) >= HEARD_FRAME:
                    if _dbfs(bytes(pending[:HEARD_FRAME])) > LOUD_DBFS:
                        self.loud_times.append(now)
                    self.heard.pcm += pending[:HEARD_FRAME]
                    del pending[:HEARD_FRAME]
                    self.heard.times.append(now)
        finally:
            self.heard.ended.set()
            await stream.aclose()

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.room.disconnect()
        await self.source.aclose()
