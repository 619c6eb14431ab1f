"""Cut a clause's samples into chunks of a target playback length."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt


def chunk_samples(
    samples: npt.NDArray[np.int16], sample_rate: int, chunk_s: float
) -> Iterator[npt.NDArray[np.int16]]:
    """Consecutive slices of ``chunk_s`` seconds (the last one may be shorter)."""
    size = max(round(sample_rate * chunk_s), 1)
    for start in range(0, samples.size, size):
        yield samples[start : start + size]
