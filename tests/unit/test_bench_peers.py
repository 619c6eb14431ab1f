"""The pure parts of ``make bench-peers``: per-class percentiles, ratios, WER, the table."""

from __future__ import annotations

import pytest

from benchmarks.peers import report
from benchmarks.peers.report import Turn

pytestmark = pytest.mark.unit


def test_summarize_groups_by_class_and_counts_unanswered() -> None:
    turns = [
        Turn("short", 400.0),
        Turn("short", 600.0),
        Turn("short", 500.0, barge_in_stop_ms=120.0),
        Turn("long", 900.0),
        Turn("goodbye", None),
    ]
    s = report.summarize(turns)
    assert s["v2v_by_class"]["short"] == {"p50": 500.0, "p95": 600.0, "n": 3}
    assert s["v2v_by_class"]["long"]["n"] == 1
    assert "goodbye" not in s["v2v_by_class"]
    assert s["v2v_all"]["p50"] == 500.0  # nearest rank over 400, 500, 600, 900
    assert s["v2v_all"]["p95"] == 900.0
    assert s["barge_in_stop"] == {"p50": 120.0, "p95": 120.0, "n": 1}
    assert (s["turns"], s["unanswered"]) == (5, 1)


def test_ratios_are_ours_over_theirs_and_none_when_missing() -> None:
    ours = report.summarize([Turn("short", 500.0), Turn("short", 700.0)])
    theirs = report.summarize([Turn("short", 2000.0), Turn("short", 1400.0)])
    r = report.ratios(ours, theirs)
    assert r["p50"] == pytest.approx(500.0 / 1400.0)
    assert r["p95"] == pytest.approx(700.0 / 2000.0)
    empty = report.summarize([Turn("short", None)])
    assert report.ratios(ours, empty) == {"p50": None, "p95": None}
    assert report.ratio(1.0, 0.0) is None


def test_caller_wer_counts_edits_over_all_reference_words() -> None:
    pairs = [
        ("when are you open on saturday", "when are you open on set or day"),  # 1 sub + 2 ins
        ("goodbye", "goodbye"),
    ]
    assert report.caller_wer(pairs) == pytest.approx(3 / 7)
    assert report.caller_wer([]) is None


def test_table_has_every_class_wer_and_ratio_against_ours() -> None:
    ours = report.summarize([Turn("short", 500.0), Turn("long", 800.0)])
    ours["caller_wer"] = 0.1
    peer = report.summarize([Turn("short", 1000.0), Turn("long", 3200.0)])
    peer["caller_wer"] = None
    text = report.table({"trunkline": ours, "pipecat best": peer}, "trunkline")
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[1:6]] == ["short", "long", "off_topic", "goodbye",
                                                         "all"]  # fmt: skip
    assert "500/500 (1)" in lines[1]
    assert "1000/1000 (1)" in lines[1]
    assert "10.0%" in text
    # all: ours p50/p95 500/800, peer 1000/3200 -> 0.50x / 0.25x
    assert lines[-1].rstrip().endswith("0.50x / 0.25x")
