"""The internal frame type and a framer that cuts any byte stream into exact frames."""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.audio.pcm import SAMPLE_WIDTH

INTERNAL_RATE = 16000
FRAME_MS = 20
FRAME_BYTES = INTERNAL_RATE * FRAME_MS // 1000 * SAMPLE_WIDTH  # 640


def frame_bytes(sample_rate: int = INTERNAL_RATE, frame_ms: int = FRAME_MS) -> int:
    """Bytes in one mono PCM16 frame of ``frame_ms`` at ``sample_rate``."""
    samples, rest = divmod(sample_rate * frame_ms, 1000)
    if rest or samples <= 0:
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
    return samples * SAMPLE_WIDTH


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Mono PCM16 audio, by default 20 ms at 16 kHz (640 bytes).

    ``sequence`` counts frames from 0 within a stream; ``timestamp_ms`` is the stream time of the
    first sample.
    """

    pcm: bytes
    sample_rate: int = INTERNAL_RATE
    sequence: int = 0
    timestamp_ms: int = 0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if not self.pcm or len(self.pcm) % SAMPLE_WIDTH:
            raise ValueError(
                f"frame PCM16 must be a non-empty even byte count, got {len(self.pcm)}"
            )

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH

    @property
    def duration_ms(self) -> float:
        return self.samples * 1000 / self.sample_rate


class Framer:
    """Accepts byte chunks of any size, returns exact frames and keeps the remainder."""

    def __init__(
        self, sample_rate: int = INTERNAL_RATE, frame_ms: int = FRAME_MS, start_sequence: int = 0
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = frame_bytes(sample_rate, frame_ms)
        self._buffer = bytearray()
        self._sequence = start_sequence

    @property
    def pending(self) -> int:
        """Bytes held back until a frame is complete."""
        return len(self._buffer)

    def _frame(self, pcm: bytes) -> AudioFrame:
        frame = AudioFrame(
            pcm=pcm,
            sample_rate=self.sample_rate,
            sequence=self._sequence,
            timestamp_ms=self._sequence * self.frame_ms,
        )
        self._sequence += 1
        return frame

    def push(self, chunk: bytes) -> list[AudioFrame]:
        """Add ``chunk``; return every complete frame now available, in order."""
        self._buffer += chunk
        whole = len(self._buffer) - len(self._buffer) % self.frame_bytes
        data = bytes(self._buffer[:whole])
        del self._buffer[:whole]
        return [
            self._frame(data[i : i + self.frame_bytes]) for i in range(0, whole, self.frame_bytes)
        ]

    def flush(self) -> AudioFrame | None:
        """The remainder padded with silence to a whole frame, or None when nothing is pending."""
        if not self._buffer:
            return None
        data = bytes(self._buffer).ljust(self.frame_bytes, b"\0")
        self._buffer.clear()
        return self._frame(data)
