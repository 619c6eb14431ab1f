"""Long utterances: cut audio into windows Whisper can decode (its encoder sees at most 30 s).

Each cut is placed at the quietest short frame in the last ``search_s`` before a window would
grow past ``max_s``, so a cut falls in a pause between words rather than inside one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def window_bounds(
    samples: npt.NDArray[np.float32],
    rate: int,
    *,
    max_s: float = 29.0,
    search_s: float = 5.0,
    frame_s: float = 0.02,
) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges covering ``samples`` in order, each at most ``max_s``."""
    if max_s <= 0 or not 0 < search_s <= max_s or frame_s <= 0:
        raise ValueError("need 0 < search_s <= max_s and frame_s > 0")
    total = int(samples.size)
    limit = int(max_s * rate)
    frame = max(1, int(frame_s * rate))
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > limit:
        lo = start + limit - int(search_s * rate)
        cut = lo + _quietest_frame(samples[lo : start + limit], frame)
        bounds.append((start, cut))
        start = cut
    if start < total or not bounds:
        bounds.append((start, total))
    return bounds


def _quietest_frame(region: npt.NDArray[np.float32], frame: int) -> int:
    """Offset of the middle of the lowest-energy ``frame``-sample frame in ``region``."""
    count = region.size // frame
    if count == 0:
        return region.size
    energy = np.square(region[: count * frame].astype(np.float64)).reshape(count, frame).sum(1)
    # The last quietest frame: the longest window that still ends in a pause.
    best = count - 1 - int(np.argmin(energy[::-1]))
    return best * frame + frame // 2


def quiet_point(
    samples: npt.NDArray[np.float32],
    rate: int,
    around_s: float,
    *,
    within_s: float = 0.1,
    margin_db: float = 30.0,
    frame_s: float = 0.02,
) -> float | None:
    """The middle of the quietest two ``frame_s`` frames in a row within ``within_s`` of
    ``around_s``, if both are at least ``margin_db`` below the loudest frame of ``samples`` (a
    gap between words, not a stop inside one); None where the audio there is never that quiet."""
    frame = max(1, int(frame_s * rate))
    count = samples.size // frame
    if count == 0:
        return None
    energy = np.square(samples[: count * frame].astype(np.float64)).reshape(count, frame).mean(1)
    level = 10 * np.log10(energy + 1e-12)
    lo = max(0, int((around_s - within_s) * rate) // frame)
    hi = min(count, int((around_s + within_s) * rate) // frame + 1)
    if lo >= hi:
        return None
    # a pause is two quiet frames in a row: a stop consonant inside a word is one
    pairs = np.maximum(level[lo:hi], level[min(lo + 1, count - 1) : hi + 1][: hi - lo])
    best = lo + int(np.argmin(pairs))
    if pairs[best - lo] > float(level.max()) - margin_db:
        return None
    return ((best + 1) * frame) / rate
