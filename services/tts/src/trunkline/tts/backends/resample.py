"""Resample a clause's audio, piece by piece, to the stream's rate as PCM16 samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trunkline.audio import Resampler, float32_to_int16


class ClauseResampler:
    """One per clause: a :class:`trunkline.audio.Resampler` keeps the filter state across the
    pieces a backend yields, and ``flush`` returns the samples still inside the filter at the
    end of the clause. Rates outside ``trunkline.audio.SUPPORTED_RATES`` raise ``ValueError``."""

    def __init__(self, out_rate: int) -> None:
        self.out_rate = out_rate
        self._resampler: Resampler | None = None

    def push(self, samples: npt.NDArray[np.float32], in_rate: int) -> npt.NDArray[np.int16]:
        pcm = float32_to_int16(samples)
        if in_rate == self.out_rate:
            return pcm
        if self._resampler is None or self._resampler.in_rate != in_rate:
            self._resampler = Resampler(in_rate, self.out_rate)
        return self._resampler.process(pcm)

    def flush(self) -> npt.NDArray[np.int16]:
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        out = self._resampler.flush()
        self._resampler = None
        return out
