"""Resample a clause's audio, piece by piece, to the stream's rate as PCM16 samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from trunkline.audio.pcm import float32_to_int16


class ClauseResampler:
    """One per clause: keeps soxr's filter state across the pieces a backend yields, and
    ``flush`` returns the samples still inside the filter at the end of the clause."""

    def __init__(self, out_rate: int) -> None:
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        self._in_rate: int | None = None

    def push(self, samples: npt.NDArray[np.float32], in_rate: int) -> npt.NDArray[np.int16]:
        if in_rate == self.out_rate:
            return float32_to_int16(samples)
        if self._stream is None or self._in_rate != in_rate:
            self._stream = soxr.ResampleStream(in_rate, self.out_rate, 1, dtype="float32")
            self._in_rate = in_rate
        out = self._stream.resample_chunk(np.ascontiguousarray(samples, np.float32))
        return float32_to_int16(out)

    def flush(self) -> npt.NDArray[np.int16]:
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        out = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream = None
        return float32_to_int16(out)
