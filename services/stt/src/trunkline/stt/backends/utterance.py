"""The audio of one utterance, appended live and readable from the start any number of times.

A flush request travels in order with the audio as an empty chunk (:data:`FLUSH`): audio is
never appended empty, so a reader that meets one is asked for a partial transcript covering
everything before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

FLUSH = b""  # in a chunk stream: transcribe everything before this now


class UtteranceAudio:
    """Chunks of PCM16 for one utterance. A reader sees every chunk from the first one, so a
    retried backend call can replay what was already sent while the caller keeps talking."""

    def __init__(self, index: int = 0, offset_bytes: int = 0) -> None:
        self.index = index
        self.offset_bytes = offset_bytes
        self.cancelled = False
        self.finished = False  # its final was emitted
        self._chunks: list[bytes] = []
        self._last_flush = -1
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

    def flush(self) -> None:
        """Ask the reader for a partial transcript of the audio so far (see :data:`FLUSH`)."""
        if self._closed:
            raise RuntimeError("utterance already ended")
        self._chunks.append(FLUSH)
        self._last_flush = len(self._chunks) - 1
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
        """Every chunk from the first, then new ones as they arrive, until the end (flush
        requests among them as :data:`FLUSH`, except one a later flush or the end overtook
        before it was read: a reader that falls behind catches up instead of decoding stale
        audio)."""
        index = 0
        while True:
            while index < len(self._chunks):
                chunk = self._chunks[index]
                index += 1
                if not chunk and (self._closed or index - 1 < self._last_flush):
                    continue  # overtaken by a later flush or the end: they answer it
                yield chunk
            if self._closed:
                return
            self._changed.clear()
            await self._changed.wait()
