"""Analysis metrics from paired live and shadow turns, as pure functions (no I/O).

Each ``ShadowTurnResult`` pairs one live turn with the candidate's answer to it. Over a window:

- ``voice_to_voice_p95_ms``: p95 of the candidate's estimated voice-to-voice, the live turn's
  (end of caller speech to first audio) plus the difference of the two reply times (transcript
  to first reply clause) — the candidate's extra work lands in front of the caller's ear;
- ``reply_time_delta_ms``: the median of shadow minus live reply time, per paired turn (the
  same turn, moments apart, on the same services: a load swing moves both);
- ``dropped_turn_ratio``: shadow turns that failed (a peer error, a timeout) over all;
- ``tool_call_agreement``: turns whose tool calls equal live's, over the answered turns.

A metric with too few paired turns has no value (an inconclusive check, never a failure).
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


def metric_value(
    name: MetricName, turns: Sequence[PairedTurn], min_turns: int = 3
) -> tuple[float | None, str]:
    """The metric over ``turns``, or None with the reason it has no value."""
    answered = [t for t in turns if not t.failed]
    if name is MetricName.DROPPED_TURN_RATIO:
        if len(turns) < min_turns:
            return None, f"{len(turns)} shadow turns (need {min_turns})"
        return (len(turns) - len(answered)) / len(turns), ""
    if len(answered) < min_turns:
        return None, f"{len(answered)} answered shadow turns (need {min_turns})"
    if name is MetricName.REPLY_TIME_DELTA_MS:
        return 1000 * quantile([t.shadow_reply_s - t.live_reply_s for t in answered], 0.5), ""
    if name is MetricName.TOOL_CALL_AGREEMENT:
        return sum(t.tools_agree for t in answered) / len(answered), ""
    if name is MetricName.VOICE_TO_VOICE_P95_MS:
        heard = [t for t in answered if t.live_response_s > 0]
        if len(heard) < min_turns:
            return None, f"{len(heard)} shadow turns paired with a heard live turn"
        estimates = [t.live_response_s + t.shadow_reply_s - t.live_reply_s for t in heard]
        return 1000 * quantile(estimates, 0.95), ""
    return None, f"{name.value} is not measured on shadow turns"
