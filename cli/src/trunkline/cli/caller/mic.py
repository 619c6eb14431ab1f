"""The caller's microphone: a continuous 20 ms media stream, silence between utterances.

Frame ``k`` is due at ``t0 + k * 20 ms`` (absolute-time scheduling: a late wake-up never shifts
later frames, so there is no drift); a frame that is already late is sent at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from trunkline.audio import MULAW_FRAME_BYTES
from trunkline.cli.caller.audio import FRAME_SECONDS, MULAW_SILENCE, frames

SendMedia = Callable[[bytes, int], Awaitable[None]]  # (160 bytes of mu-law, stream time in ms)
Clock = Callable[[], float]
SILENT_FRAME = MULAW_SILENCE * MULAW_FRAME_BYTES


class Microphone:
    def __init__(
        self,
        send: SendMedia,
        clock: Clock,
        t0: float,
        on_frame: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self._send = send
        self._clock = clock
        self.t0 = t0
        self._on_frame = on_frame
        self._queue: deque[bytes] = deque()
        self._times: list[float] = []
        self._done: asyncio.Future[tuple[float, ...]] | None = None
        self.frames_sent = 0
        self.lateness: list[float] = []  # actual send time minus due time, per frame

    @property
    def speaking(self) -> bool:
        return self._done is not None

    def say(self, mulaw: bytes) -> asyncio.Future[tuple[float, ...]]:
        """Queue an utterance; the future gives the send time of each of its frames."""
        if self._done is not None:
            raise RuntimeError("the caller is already speaking")
        cut = frames(mulaw)
        if not cut:
            raise ValueError("empty utterance")
        self._queue.extend(cut)
        self._times = []
        self._done = asyncio.get_running_loop().create_future()
        return self._done

    def due(self, k: int) -> float:
        return self.t0 + k * FRAME_SECONDS

    async def run(self) -> None:
        """Send frames until cancelled."""
        k = 0
        while True:
            delay = self.due(k) - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            speech = bool(self._queue)  # decided before the send: say() may run during it
            frame = self._queue.popleft() if speech else SILENT_FRAME
            await self._send(frame, k * 20)
            sent = self._clock()
            self.lateness.append(sent - self.due(k))
            if self._on_frame is not None:
                self._on_frame(k * MULAW_FRAME_BYTES, frame)
            k += 1
            self.frames_sent = k
            if speech and self._done is not None:
                self._times.append(sent)
                if not self._queue:
                    done, self._done = self._done, None
                    if not done.done():
                        done.set_result(tuple(self._times))
