"""The caller's earpiece: plays agent audio in real time like a phone would.

Media is buffered and played at 8000 samples/s; a ``mark`` is echoed when playback reaches it
(all audio before it has been heard); ``clear`` empties the buffer at once, stops the chunk now
playing and echoes every mark still queued (as Twilio does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from trunkline.audio import TELEPHONY_RATE
from trunkline.cli.caller.audio import DEFAULT_VOICE_DBFS, is_voiced
from trunkline.cli.caller.latency import CallLog, Played
from trunkline.cli.caller.recorder import CallRecorder
from trunkline.cli.caller.wakeup import Wakeup

EchoMark = Callable[[str], Awaitable[None]]
Clock = Callable[[], float]
CONTIGUOUS_S = 0.03
_Item = tuple[bytes, float] | str  # (audio, time received) or a mark name


class Speaker:
    def __init__(
        self,
        clock: Clock,
        echo_mark: EchoMark,
        log: CallLog,
        recorder: CallRecorder | None = None,
        voice_dbfs: float = DEFAULT_VOICE_DBFS,
    ) -> None:
        self._clock = clock
        self._echo = echo_mark
        self._log = log
        self._recorder = recorder
        self._voice_dbfs = voice_dbfs
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._interrupt = Wakeup()  # a clear stops the chunk playing now
        self._idle = asyncio.Event()
        self._idle.set()
        self._next = 0.0  # when the audio queued so far ends playing
        self._current: Played | None = None

    @property
    def idle(self) -> bool:
        """Nothing playing and nothing queued."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def push_media(self, mulaw: bytes, received: float) -> None:
        self._queue.append((bytes(mulaw), received))
        self._idle.clear()
        self._wake.set()

    def push_mark(self, name: str) -> None:
        self._queue.append(name)
        self._idle.clear()
        self._wake.set()

    def clear(self) -> list[str]:
        """Drop queued audio, stop what plays now; return the queued marks to echo."""
        now = self._clock()
        marks = [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        if self._current is not None and self._current.end > now:
            self._current.end = now
            if self._recorder is not None:
                self._recorder.agent_cut(now)
        self._next = min(self._next, now)
        self._interrupt.notify()
        return marks

    async def _play_until(self, end: float) -> None:
        delay = end - self._clock()
        if delay > 0:
            await self._interrupt.wait(delay)

    async def run(self) -> None:
        """Play until cancelled."""
        while True:
            if not self._queue:
                self._current = None
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, str):
                self._log.marks_echoed.append((self._clock(), item))
                await self._echo(item)
                continue
            audio, received = item
            now = self._clock()
            # Back to back with the audio before it (a late wake-up must not open a gap), unless
            # the buffer had run dry: then it starts now.
            start = self._next if now < self._next + CONTIGUOUS_S else now
            end = start + len(audio) / TELEPHONY_RATE
            self._current = Played(start, end, is_voiced(audio, self._voice_dbfs), received)
            self._log.played.append(self._current)
            if self._recorder is not None:
                self._recorder.agent_played(start, audio)
            self._next = end
            await self._play_until(end)
