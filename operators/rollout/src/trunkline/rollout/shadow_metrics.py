"""Analysis metrics from paired live and shadow turns, as pure functions (no I/O).

Each ``ShadowTurnResult`` pairs one live turn with the candidate's answer to it. Over a window:

- ``voice_to_voice_p95_ms``: p95 of the candidate's estimated voice-to-voice, the live turn's
  (end of caller speech to first audio) plus the difference of the two reply times (transcript
  to first reply clause) — the candidate's extra work lands in front of the caller's ear;
- ``reply_time_delta_ms``: the median of shadow minus live reply time, per paired turn (the
  same turn, moments apart, on the same services: a load swing moves both);
- ``dropped_turn_ratio``: shadow turns that failed (a peer error, a timeout) over all;
- ``tool_call_agreement``: turns whose tool calls equal live's, over the answered turns.

A metric from fewer paired turns than the minimum is *provisional*: it may fail a check but
never pass one or decide a rollback; with no turns at all it has no value yet (the check waits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.rollout.resources import MetricName


@dataclass(frozen=True)
class PairedTurn:
    live_reply_s: float
    shadow_reply_s: float
    live_response_s: float  # 0: the live turn had no voice-to-voice (no audio was heard)
    tools_agree: bool
    failed: bool


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _sample(name: MetricName, answered: list[PairedTurn]) -> tuple[list[PairedTurn], str] | None:
    """The turns ``name`` is computed from and what they are called (None: not measured)."""
    if name in (MetricName.REPLY_TIME_DELTA_MS, MetricName.TOOL_CALL_AGREEMENT):
        return answered, "answered shadow turns"
    if name is MetricName.VOICE_TO_VOICE_P95_MS:
        heard = [t for t in answered if t.live_response_s > 0]
        return heard, "shadow turns paired with a heard live turn"
    return None


def _compute(name: MetricName, turns: list[PairedTurn]) -> float:
    if name is MetricName.REPLY_TIME_DELTA_MS:
        return 1000 * quantile([t.shadow_reply_s - t.live_reply_s for t in turns], 0.5)
    if name is MetricName.TOOL_CALL_AGREEMENT:
        return sum(t.tools_agree for t in turns) / len(turns)
    estimates = [t.live_response_s + t.shadow_reply_s - t.live_reply_s for t in turns]
    return 1000 * quantile(estimates, 0.95)


def metric_value(
    name: MetricName, turns: Sequence[PairedTurn], min_turns: int = 3
) -> tuple[float | None, str, bool]:
    """The metric over ``turns``: its value (None when there is none), why it has none or why
    it is provisional, and whether it is provisional: from fewer than ``min_turns`` turns
    (None when there are none yet). A provisional value may fail a check, never pass one
    (``trunkline.rollout.analysis``)."""
    answered = [t for t in turns if not t.failed]
    if name is MetricName.DROPPED_TURN_RATIO:
        sample, what = list(turns), "shadow turns"
    else:
        found = _sample(name, answered)
        if found is None:
            return None, f"{name.value} is not measured on shadow turns", False
        sample, what = found
    few = len(sample) < min_turns
    why = f"{len(sample)} {what} (need {min_turns})" if few else ""
    if not sample:
        return None, why, True
    if name is MetricName.DROPPED_TURN_RATIO:
        return (len(turns) - len(answered)) / len(turns), why, few
    return _compute(name, sample), why, few
