"""Shadow sampling and pairing (pure)."""

from __future__ import annotations

import pytest

from trunkline.gateway.shadow.core import (
    reply_time_s,
    sample_point,
    sampled,
    tool_call,
    tools_agree,
)

pytestmark = pytest.mark.unit


def test_sampling_is_by_call_id_and_close_to_the_percent() -> None:
    ids = [f"CA{n:06d}" for n in range(20_000)]
    for percent in (1.0, 12.5, 50.0):
        share = sum(sampled(i, percent) for i in ids) / len(ids)
        assert abs(share - percent / 100) < 0.01, (percent, share)
    assert all(sampled(i, 100.0) for i in ids[:100])
    # the same answer every time, and a call sampled at 10 % is sampled at 50 % too
    assert [sampled(i, 10.0) for i in ids[:500]] == [sampled(i, 10.0) for i in ids[:500]]
    assert all(sampled(i, 50.0) for i in ids if sampled(i, 10.0))
    assert sample_point("CA000001") == sample_point("CA000001")


def test_reply_time_is_context_plus_first_clause() -> None:
    stages = {
        "context.resolve": 0.08,
        "llm.time_to_first_clause": 0.31,
        "tts.time_to_first_audio": 9,
    }
    assert reply_time_s(stages) == pytest.approx(0.39)
    assert reply_time_s({"context.resolve": 0.05}) == pytest.approx(0.05)  # no LLM: a planned reply


def test_tool_calls_agree_on_names_arguments_and_order() -> None:
    lookup = tool_call("lookup_account", '{"account_id": "441729", "detail": true}')
    same = tool_call("lookup_account", '{ "detail": true, "account_id": "441729" }')
    other = tool_call("lookup_account", '{"account_id": "441730", "detail": true}')
    book = tool_call("book_visit", '{"day": "monday"}')
    assert tools_agree([lookup], [same])
    assert tools_agree([], [])
    assert not tools_agree([lookup], [other])
    assert not tools_agree([lookup, book], [book, lookup])
    assert not tools_agree([lookup], [])
    assert tool_call("x", "not json").arguments == "not json"
