"""A Python aiortc peer that plays a browser's part (tests, benchmarks): a microphone track fed
with PCM (recorded phrases), the far end's audio recorded with arrival times, signalling over
HTTP to the gateway's ``/webrtc/*`` endpoints."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

RATE = 16000
FRAME_SAMPLES = 320  # 20 ms at 16 kHz


class Microphone(MediaStreamTrack):
    """Sends queued 16 kHz PCM in 20 ms frames at real time, silence when nothing is queued."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: deque[bytes] = deque()
        self._start: float | None = None
        self._count = 0

    def say(self, pcm: bytes) -> float:
        """Queue ``pcm``; returns how long it takes to play (seconds)."""
        step = FRAME_SAMPLES * 2
        for i in range(0, len(pcm), step):
            self._frames.append(pcm[i : i + step].ljust(step, b"\x00"))
        return len(self._frames) * 0.02

    @property
    def speaking(self) -> bool:
        return bool(self._frames)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._count * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = self._frames.popleft() if self._frames else bytes(FRAME_SAMPLES * 2)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        frame.pts = self._count * FRAME_SAMPLES
        self._count += 1
        return frame


@dataclass
class Heard:
    """The far end's audio as 16 kHz mono PCM16, with the arrival time of each 20 ms."""

    pcm: bytearray = field(default_factory=bytearray)
    times: list[float] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def loud_frames_since(self, since: float, floor_dbfs: float = -50.0) -> int:
        samples = np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float64)
        loud = 0
        for i, at in enumerate(self.times):
            if at < since:
                continue
            chunk = samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            if chunk.size and _dbfs(chunk) > floor_dbfs:
                loud += 1
        return loud

    def last_loud_at(self, floor_dbfs: float = -50.0) -> float | None:
        samples = np.frombuffer(bytes(self.pcm), dtype="<i2").astype(np.float64)
        last = None
        for i, at in enumerate(self.times):
            chunk = samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
            if chunk.size and _dbfs(chunk) > floor_dbfs:
                last = at
        return last

    def since(self, start: float) -> bytes:
        first = next((i for i, at in enumerate(self.times) if at >= start), len(self.times))
        return bytes(self.pcm[first * FRAME_SAMPLES * 2 :])


def _dbfs(chunk: np.ndarray[Any, Any]) -> float:
    rms = float(np.sqrt(np.mean(chunk**2)))
    return 20.0 * float(np.log10(max(rms, 1e-9) / 32768))


class BrowserPeer:
    """One browser-like peer: ``mic`` goes out, the far end's audio lands in ``heard``."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        self.heard = Heard()
        self._reader: asyncio.Task[None] | None = None
        self.pc.addTrack(self.mic)
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        pending = bytearray()
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, AudioFrame):
                    continue
                for piece in resampler.resample(frame):
                    pending += piece.to_ndarray().astype("<i2").tobytes()
                now = time.monotonic()
                while len(pending) >= FRAME_SAMPLES * 2:
                    self.heard.pcm += pending[: FRAME_SAMPLES * 2]
                    del pending[: FRAME_SAMPLES * 2]
                    self.heard.times.append(now)
        except MediaStreamError:
            self.heard.ended.set()

    async def offer(self) -> dict[str, str]:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        local = self.pc.localDescription
        return {"sdp": local.sdp, "type": local.type}

    async def call(self, url: str, **fields: str) -> dict[str, Any]:
        """POST the offer (with ``fields``) to ``url``, apply the answer; returns the body."""
        body = {**(await self.offer()), **fields}
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
            data: dict[str, Any] = await response.json()
            assert response.status == 200, data
        await self.pc.setRemoteDescription(RTCSessionDescription(data["sdp"], data["type"]))
        return data

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
