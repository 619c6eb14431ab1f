"""Leading silence cut from a clause's audio, so its first sound reaches the caller sooner.

Piper starts every clause with 40-60 ms of near-silence (its first voiced 20 ms frame at 40 ms
for "We're open on", "The practice is", "Yes, we take"); for the reply's first clause that is
latency the caller waits through for nothing. The trailing silence (100-250 ms) stays: it is the
pause between clauses. Pure: float32 samples in, float32 samples out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class LeadingSilence:
    """Drops a clause's samples up to ``keep_s`` before its first one at or above
    ``threshold_dbfs`` (peak level), across as many pieces as the silence lasts."""

    def __init__(self, sample_rate: int, threshold_dbfs: float, keep_s: float = 0.01) -> None:
        if threshold_dbfs >= 0:
            raise ValueError("threshold_dbfs must be below 0")
        if keep_s < 0:
            raise ValueError("keep_s must be >= 0")
        self._threshold = 10 ** (threshold_dbfs / 20)
        self._keep = round(keep_s * sample_rate)
        self._held = np.zeros(0, dtype=np.float32)  # the last ``keep`` silent samples
        self._done = False

    @property
    def done(self) -> bool:
        """The first sound has been found: later pieces pass unchanged."""
        return self._done

    def push(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._done:
            return samples
        loud = np.flatnonzero(np.abs(samples) >= self._threshold)
        if loud.size == 0:  # still silence (a clause silent throughout yields nothing)
            tail = np.concatenate([self._held, samples])
            self._held = tail[len(tail) - self._keep :] if self._keep else tail[:0]
            return samples[:0]
        self._done = True
        start = int(loud[0])
        lead = np.concatenate([self._held, samples[:start]])
        kept = lead[len(lead) - self._keep :] if self._keep else lead[:0]
        return np.concatenate([kept, samples[start:]]).astype(np.float32, copy=False)
