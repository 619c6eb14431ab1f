"""The audio of one utterance, appended live and readable from the start any number of times."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable


class UtteranceAudio:
    """Chunks of PCM16 for one utterance. A reader sees every chunk from the first one, so a
    retried backend call can replay what was already sent while the caller keeps talking."""

    def __init__(self, index: int = 0, offset_bytes: int = 0) -> None:
        self.index = index
        self.offset_bytes = offset_bytes
        self.cancelled = False
        self.finished = False  # its final was emitted
        self._chunks: list[bytes] = []
        self._changed = asyncio.Event()
        self._closed = False
        self._on_close: list[Callable[[], None]] = []
        self.closed_at: float | None = None

    @classmethod
    def complete(cls, pcm: bytes) -> UtteranceAudio:
        audio = cls()
        audio.append(pcm)
        audio.close()
        return audio

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def nbytes(self) -> int:
        return sum(len(chunk) for chunk in self._chunks)

    def append(self, pcm: bytes) -> None:
        if self._closed:
            raise RuntimeError("utterance already ended")
        if pcm:
            self._chunks.append(pcm)
            self._changed.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.closed_at = asyncio.get_running_loop().time()
        self._changed.set()
        self._notify()

    def cancel(self) -> None:
        """Drop the utterance, even after its end while it decodes: no final is wanted."""
        if self.cancelled:
            return
        self.cancelled = True
        if self._closed:
            self._notify()
        else:
            self.close()

    def _notify(self) -> None:
        for callback in list(self._on_close):
            callback()

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when the utterance ends or is cancelled (now, if it has ended).

        Returns a function that unregisters the callback."""
        self._on_close.append(callback)
        if self._closed:
            callback()
        return lambda: self._on_close.remove(callback) if callback in self._on_close else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """Every chunk from the first, then new ones as they arrive, until the end."""
        index = 0
        while True:
            while index < len(self._chunks):
                yield self._chunks[index]
                index += 1
            if self._closed:
                return
            self._changed.clear()
            await self._changed.wait()
