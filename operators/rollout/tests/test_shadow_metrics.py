"""Analysis metrics from paired live and shadow turns (pure)."""

from __future__ import annotations

import pytest

from trunkline.rollout.resources import MetricName
from trunkline.rollout.shadow_metrics import PairedTurn, metric_value, quantile

pytestmark = pytest.mark.unit


def turn(live: float, shadow: float, heard: float = 0.6, *, agree: bool = True,
         failed: bool = False) -> PairedTurn:  # fmt: skip
    return PairedTurn(live, shadow, heard, agree, failed)


def test_quantile_interpolates_like_numpy() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([5.0], 0.95) == 5.0
    assert quantile(list(range(101)), 0.95) == 95.0


def test_reply_time_delta_is_the_median_paired_difference() -> None:
    # the load swings both sides of a pair: +400 ms shows whatever the live time
    slow = [turn(0.2, 0.6), turn(1.5, 1.9), turn(0.4, 0.85), turn(0.3, 0.7)]
    value, _, provisional = metric_value(MetricName.REPLY_TIME_DELTA_MS, slow)
    assert value == pytest.approx(400, abs=1)
    assert not provisional
    same = [turn(0.2, 0.21), turn(1.5, 1.45), turn(0.4, 0.42)]
    value, _, _ = metric_value(MetricName.REPLY_TIME_DELTA_MS, same)
    assert value is not None
    assert abs(value) < 25


def test_voice_to_voice_estimate_adds_the_difference_to_what_the_caller_heard() -> None:
    turns = [turn(0.2, 0.6, heard=0.5) for _ in range(5)]
    value, _, _ = metric_value(MetricName.VOICE_TO_VOICE_P95_MS, turns)
    assert value == pytest.approx(900)
    unheard = [turn(0.2, 0.6, heard=0.0) for _ in range(5)]
    value, why, _ = metric_value(MetricName.VOICE_TO_VOICE_P95_MS, unheard)
    assert value is None
    assert "heard" in why


def test_failures_and_tool_agreement() -> None:
    turns = [turn(0.2, 0.2), turn(0.2, 0.2, agree=False), turn(0.2, 0.2, failed=True),
             turn(0.2, 0.2)]  # fmt: skip
    assert metric_value(MetricName.DROPPED_TURN_RATIO, turns)[0] == 0.25
    assert metric_value(MetricName.TOOL_CALL_AGREEMENT, turns)[0] == pytest.approx(2 / 3)


def test_too_few_turns_give_a_provisional_value_and_none_give_none_yet() -> None:
    value, why, provisional = metric_value(MetricName.REPLY_TIME_DELTA_MS, [turn(0.2, 0.6)] * 2)
    assert value == pytest.approx(400)
    assert provisional
    assert why == "2 answered shadow turns (need 3)"
    value, why, provisional = metric_value(MetricName.REPLY_TIME_DELTA_MS, [])
    assert (value, provisional) == (None, True)
    assert why == "0 answered shadow turns (need 3)"
    value, why, provisional = metric_value(MetricName.DROPPED_TURN_RATIO, [])
    assert (value, why, provisional) == (None, "0 shadow turns (need 3)", True)
    failed = [turn(0.2, 0.2, failed=True)]
    assert metric_value(MetricName.DROPPED_TURN_RATIO, failed)[::2] == (1.0, True)
    assert metric_value(MetricName.REPLY_TIME_DELTA_MS, failed)[::2] == (None, True)


def test_an_unmeasured_metric_has_no_value_and_is_not_provisional() -> None:
    value, why, provisional = metric_value(MetricName.COST_PER_TURN, [turn(0.2, 0.2)] * 5)
    assert value is None
    assert not provisional
    assert "not measured" in why
