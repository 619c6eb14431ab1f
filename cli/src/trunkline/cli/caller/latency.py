"""Per-turn figures computed from what happened on the call. Pure: no I/O, no clock.

Times are seconds on one monotonic clock. Voice-to-voice is measured from the last voiced
caller frame sent to the first voiced agent media frame *received*; reply length and barge-in
stop from what was *played* (what a caller hears).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAP_S = 0.03  # played chunks closer than this are one continuous stretch of playback


@dataclass(frozen=True, slots=True)
class Received:
    t: float
    samples: int
    voiced: bool


@dataclass(slots=True)
class Played:
    start: float
    end: float  # cut short by a clear
    voiced: bool
    received: float  # when the media message carrying it arrived


@dataclass(slots=True)
class CallLog:
    """Everything the caller saw, appended live by the transport tasks."""

    t0: float
    received: list[Received] = field(default_factory=list)
    played: list[Played] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    marks_received: list[tuple[float, str]] = field(default_factory=list)
    marks_echoed: list[tuple[float, str]] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Spoken:
    """When one caller utterance went out: send time of each of its 20 ms frames."""

    frame_times: tuple[float, ...]
    voiced: tuple[int, int] | None  # first and last voiced frame index

    @property
    def onset(self) -> float | None:
        return None if self.voiced is None else self.frame_times[self.voiced[0]]

    @property
    def voiced_end(self) -> float | None:
        return None if self.voiced is None else self.frame_times[self.voiced[1]]

    @property
    def start(self) -> float:
        return self.frame_times[0]

    @property
    def end(self) -> float:
        return self.frame_times[-1]


@dataclass(frozen=True, slots=True)
class ReplyFigures:
    first_audio: float | None  # receipt of its first voiced frame
    played_start: float | None
    played_end: float | None
    received_s: float  # audio received for the reply, seconds

    @property
    def played_s(self) -> float | None:
        if self.played_start is None or self.played_end is None:
            return None
        return self.played_end - self.played_start


@dataclass(frozen=True, slots=True)
class BargeInFigures:
    agent_playing: bool  # was agent speech playing at the caller's onset?
    clear_s: float | None  # onset -> clear received
    stop_s: float | None  # onset -> agent speech stopped playing


def first_voiced_after(log: CallLog, after: float, before: float) -> float | None:
    for r in log.received:
        if r.voiced and after < r.t < before:
            return r.t
    return None


def reply(log: CallLog, after: float, before: float, rate: int = 8000) -> ReplyFigures:
    """The agent reply that began after ``after`` (first voiced frame received before ``before``);
    its playback runs until the next reply begins."""
    first = first_voiced_after(log, after, before)
    if first is None:
        return ReplyFigures(None, None, None, 0.0)
    nxt = first_voiced_after(log, before, float("inf"))
    limit = float("inf") if nxt is None else nxt
    samples = sum(r.samples for r in log.received if first <= r.t < limit)
    chunks = [p for p in log.played if p.voiced and first <= p.received < limit and p.end > p.start]
    if not chunks:
        return ReplyFigures(first, None, None, samples / rate)
    return ReplyFigures(first, chunks[0].start, max(p.end for p in chunks), samples / rate)


def barge_in(log: CallLog, onset: float, until: float) -> BargeInFigures:
    """Caller speech onset while the agent spoke: how fast the agent stopped.

    The agent is speaking when the onset falls inside one stretch of playback (chunks back to
    back, silent ones included: the pauses between a reply's words and clauses are part of it)
    that had voiced audio before the onset. Stop is when the stretch's last voiced audio ended."""
    chunks = sorted((p for p in log.played if p.end > p.start), key=lambda p: p.start)
    clear = next((c - onset for c in log.clears if onset <= c < until), None)
    stretch: list[Played] = []  # the stretch of playback that holds the onset
    end = float("-inf")
    for p in chunks:
        if p.start - end >= GAP_S:  # a gap: a new stretch begins
            if stretch and stretch[0].start <= onset < end:
                break
            stretch = []
        stretch.append(p)
        end = max(end, p.end)
    inside = bool(stretch) and stretch[0].start <= onset < end
    voiced = [p for p in stretch if p.voiced] if inside else []
    if not any(p.start <= onset for p in voiced):
        return BargeInFigures(False, clear, None)
    return BargeInFigures(True, clear, max(max(p.end for p in voiced) - onset, 0.0))


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(min(rank, len(ordered))) - 1]
