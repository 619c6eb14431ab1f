"""aiortc media pieces shared by the WebRTC caller transport and the operator leg.

- :class:`PacedTrack`: an outbound audio track that owns its clock. aiortc's RTP sender pulls
  ``recv()`` as fast as it returns; each call waits for the next 20 ms slot of a steady
  :class:`~trunkline.gateway.core.pacer.Pacer` (a late sender catches up by a bounded number of
  frames), then hands out the next queued frame or silence (WebRTC keeps sending in silence, so
  the far end's jitter buffer keeps its timing). ``on_played`` is called once per frame handed
  out: that is the transport's outbound clock. Marks are echoed when every frame queued before
  them has been handed out. ``clear`` drops every queued frame at once (barge-in). With
  ``drop_late`` (live audio, the operator leg), the frames of slots the pacer skipped are dropped
  too, so a starved loop costs exactly the late audio and the delay stays bounded; reply audio
  (the default) is never dropped: it plays later instead.
- :func:`read_frames`: a remote audio track (Opus decoded by aiortc: 48 kHz stereo s16) as
  internal 16 kHz mono PCM16 frames of 20 ms, one resample.
"""

from __future__ import annotations

import fractions
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from trunkline.audio import INTERNAL_RATE, Framer, frame_bytes
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.pacer import Pacer

log = logging.getLogger(__name__)


def peer_connection() -> RTCPeerConnection:
    """A peer connection with host candidates only: no STUN or TURN server is ever asked."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class PacedTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(
        self,
        clock: Clock,
        rate: int,
        *,
        on_played: Callable[[], None] | None = None,
        on_mark: Callable[[str], None] | None = None,
        max_catch_up: int = 5,
        drop_late: bool = False,
    ) -> None:
        super().__init__()
        self.drop_late = drop_late
        self.late_frames = 0  # queued frames dropped for skipped slots (drop_late)
        self.rate = rate
        self.frame_bytes = frame_bytes(rate)
        self.samples = self.frame_bytes // 2
        self.pacer = Pacer(max_catch_up=max_catch_up)
        self.frames_played = 0  # queued audio frames handed out
        self.silent_frames = 0  # slots with nothing queued
        self._clock = clock
        self._on_played = on_played
        self._on_mark = on_mark
        self._items: deque[bytes | str] = deque()
        self._partial = bytearray()
        self._silence = bytes(self.frame_bytes)

    @property
    def queued_frames(self) -> int:
        return sum(1 for item in self._items if isinstance(item, bytes))

    def push(self, pcm: bytes) -> None:
        """Queue PCM16 mono audio at ``rate`` (any length; a partial frame waits for more)."""
        self._partial += pcm
        whole = len(self._partial) - len(self._partial) % self.frame_bytes
        for start in range(0, whole, self.frame_bytes):
            self._items.append(bytes(self._partial[start : start + self.frame_bytes]))
        del self._partial[:whole]

    def mark(self, name: str) -> None:
        """Echo ``name`` once everything queued so far has been handed out."""
        if self._partial:
            self._items.append(bytes(self._partial).ljust(self.frame_bytes, b"\x00"))
            self._partial.clear()
        self._items.append(name)

    def clear(self) -> None:
        """Drop every queued frame now; marks stay (they are echoed at the next slot)."""
        self._partial.clear()
        self._items = deque(item for item in self._items if isinstance(item, str))

    def _drop(self, frames: int) -> None:
        kept: deque[bytes | str] = deque()
        for item in self._items:
            if isinstance(item, bytes) and frames > 0:
                frames -= 1
                self.late_frames += 1
                continue
            kept.append(item)
        self._items = kept

    def _echo_marks(self) -> None:
        while self._items and isinstance(self._items[0], str):
            name = self._items.popleft()
            assert isinstance(name, str)
            if self._on_mark is not None:
                self._on_mark(name)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        skipped = self.pacer.skipped
        while not self.pacer.due(self._clock.now()):
            await self._clock.sleep(self.pacer.next_at() - self._clock.now())
        self.pacer.take()
        if self.drop_late and self.pacer.skipped > skipped:
            self._drop(self.pacer.skipped - skipped)
        self._echo_marks()
        pcm = self._silence
        if self._items:
            item = self._items.popleft()
            assert isinstance(item, bytes)
            pcm = item
            self.frames_played += 1
        else:
            self.silent_frames += 1
        if self._on_played is not None:
            self._on_played()
        self._echo_marks()  # a mark right after this frame: echoed with it
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        frame.pts = (self.pacer.taken - 1) * self.samples  # skipped slots leave a gap
        return frame


def to_pcm16(frame: AudioFrame, resampler: AudioResampler) -> bytes:
    """One decoded frame as mono PCM16 at the resampler's rate."""
    out = bytearray()
    for piece in resampler.resample(frame):
        out += piece.to_ndarray().astype("<i2").tobytes()
    return bytes(out)


async def read_frames(track: MediaStreamTrack) -> AsyncIterator[bytes]:
    """The remote track's audio as 640-byte frames (16 kHz mono PCM16, 20 ms) until it ends."""
    resampler = AudioResampler(format="s16", layout="mono", rate=INTERNAL_RATE)
    framer = Framer(INTERNAL_RATE)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, AudioFrame):
            continue
        for whole in framer.push(to_pcm16(frame, resampler)):
            yield whole.pcm
