"""Jaeger all-in-one (v1.75.0, built by ``make install``) as the local stack runs it: spans a
service exports over OTLP/gRPC come back through the query API as one tree, and every span is
forwarded unchanged to the OTLP sink (which writes the stack's ``spans.jsonl``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.trace import NonRecordingSpan, set_span_in_context

from trunkline.cli import traces
from trunkline.devservers import JaegerServer, ToolMissingError, query_ready
from trunkline.telemetry.setup import setup_telemetry
from trunkline.telemetry.sink import OtlpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def jaeger_factory() -> Iterator[list[JaegerServer]]:
    started: list[JaegerServer] = []
    yield started
    for server in started:
        server.close()


def start_jaeger(started: list[JaegerServer], forward_to: str | None = None) -> JaegerServer:
    try:
        server = JaegerServer(forward_to=forward_to)
    except ToolMissingError as exc:
        pytest.fail(str(exc))
    started.append(server)
    return server.start()


async def test_a_call_tree_goes_in_over_otlp_and_comes_back_from_the_query_api(
    otlp_sink: OtlpSink, jaeger_factory: list[JaegerServer]
) -> None:
    jaeger = await asyncio.to_thread(start_jaeger, jaeger_factory, otlp_sink.endpoint)
    gateway = setup_telemetry("gateway", jaeger.otlp_endpoint, None, set_global=False)
    stt = setup_telemetry("stt", jaeger.otlp_endpoint, None, set_global=False)
    try:
        tracer = gateway.tracer("test")
        with (
            tracer.start_as_current_span("call", attributes={"call.id": "CA-jaeger-1"}) as call,
            tracer.start_as_current_span("turn"),
            tracer.start_as_current_span("stt") as stage,
        ):
            parent = set_span_in_context(NonRecordingSpan(stage.get_span_context()))  # as gRPC
            stt.tracer("test").start_span("stt.recognize", context=parent).end()
        trace_id = format(call.get_span_context().trace_id, "032x")
    finally:
        gateway.shutdown()  # flushes the batch
        stt.shutdown()
    found_id, spans = await asyncio.to_thread(
        traces.wait_for_call_trace, jaeger.url, "CA-jaeger-1", services={"gateway", "stt"},
        limit_s=30,
    )  # fmt: skip
    assert found_id == trace_id
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"call", "turn", "stt", "stt.recognize"}
    assert by_name["call"]["parent_span_id"] == ""
    assert by_name["turn"]["parent_span_id"] == by_name["call"]["span_id"]
    assert by_name["stt"]["parent_span_id"] == by_name["turn"]["span_id"]
    assert by_name["stt.recognize"]["parent_span_id"] == by_name["stt"]["span_id"]
    assert by_name["stt.recognize"]["service_name"] == "stt"
    assert by_name["call"]["attributes"]["call.id"] == "CA-jaeger-1"
    # the same spans, forwarded by Jaeger to the sink
    forwarded = await otlp_sink.wait_for(lambda got: len(got) >= 4, timeout=15)
    assert {(s.trace_id, s.span_id) for s in forwarded} == {(trace_id, s["span_id"]) for s in spans}
    assert traces.call_trace_ids(jaeger.url, "CA-no-such-call") == []


def test_two_jaegers_side_by_side_and_a_clean_stop(jaeger_factory: list[JaegerServer]) -> None:
    first = start_jaeger(jaeger_factory)
    second = start_jaeger(jaeger_factory)
    assert first.url != second.url
    assert first.otlp_endpoint != second.otlp_endpoint
    assert query_ready(first.url)
    assert query_ready(second.url)
    first.stop()
    assert not query_ready(first.url)
    assert query_ready(second.url)
