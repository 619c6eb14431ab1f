"""A transport's outbound clock: a steady 20 ms frame schedule with a catch-up limit (no I/O).

Frame ``k`` is due at ``start + k * frame_s``: the schedule never drifts however late each wake-up
comes. A consumer that fell behind (a busy event loop) gets the missed frames at once, but at most
``max_catch_up`` of them; an older debt is dropped (counted in ``skipped``) and the schedule goes
on from there, so a stall never turns into a long burst of audio at the far end.
"""

from __future__ import annotations

import math

FRAME_S = 0.02


class Pacer:
    def __init__(self, frame_s: float = FRAME_S, max_catch_up: int = 5) -> None:
        if frame_s <= 0:
            raise ValueError(f"frame_s must be positive (got {frame_s})")
        if max_catch_up < 1:
            raise ValueError(f"max_catch_up must be >= 1 (got {max_catch_up})")
        self.frame_s = frame_s
        self.max_catch_up = max_catch_up
        self.taken = 0  # frames handed out since the start (skipped ones included)
        self.skipped = 0  # frames dropped because the consumer was too far behind
        self._start: float | None = None

    def due(self, now: float) -> int:
        """How many frames are due at ``now`` and not yet taken (at most ``max_catch_up``).
        The first call starts the schedule: its frame is due at once."""
        if self._start is None:
            self._start = now
        elapsed = math.floor((now - self._start) / self.frame_s + 1e-9) + 1
        owed = elapsed - self.taken
        if owed > self.max_catch_up:
            self.skipped += owed - self.max_catch_up
            self.taken += owed - self.max_catch_up
            owed = self.max_catch_up
        return max(owed, 0)

    def start_at(self, at: float) -> None:
        """Start the schedule at ``at`` (its first frame due then), unless it has started."""
        if self._start is None:
            self._start = at

    def take(self, frames: int = 1) -> None:
        self.taken += frames

    def next_at(self) -> float:
        """When the next frame not yet taken is due (``due`` must have been called once)."""
        start = self._start if self._start is not None else 0.0
        return start + self.taken * self.frame_s
