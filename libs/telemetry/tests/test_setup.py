"""setup_telemetry: spans to the given exporter, metrics on a /metrics endpoint, propagation."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.devservers.ports import free_port
from trunkline.telemetry import extract_context, inject_headers, setup_telemetry
from trunkline.telemetry.sink import OtlpSink

pytestmark = pytest.mark.integration


def test_metrics_endpoint_and_span_exporter() -> None:
    exporter = InMemorySpanExporter()
    port = free_port()
    telemetry = setup_telemetry(
        "svc-test",
        None,
        port,
        resource_attrs={"deployment.environment": "test"},
        span_exporter=exporter,
        metrics_addr="127.0.0.1",
        set_global=False,
    )
    try:
        counter = telemetry.meter("test").create_counter("turns", unit="1", description="turns")
        counter.add(2, {"agent": "support"})
        with telemetry.tracer("test").start_as_current_span("work"):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.resource.attributes["service.name"] == "svc-test"
        assert span.resource.attributes["deployment.environment"] == "test"
        assert telemetry.metrics_port == port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert 'turns_total{agent="support"} 2.0' in body
    finally:
        telemetry.shutdown()
        telemetry.shutdown()


def test_headers_round_trip_the_current_span() -> None:
    telemetry = setup_telemetry("svc-test", None, 0, set_global=False)
    with telemetry.tracer("t").start_as_current_span("publish") as span:
        headers = inject_headers({"x-other": "1"})
    assert headers["x-other"] == "1"
    assert headers["traceparent"].split("-")[2] == format(span.get_span_context().span_id, "016x")
    remote = trace.get_current_span(extract_context(headers)).get_span_context()
    assert remote.is_remote
    assert remote.trace_id == span.get_span_context().trace_id
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid
    telemetry.shutdown()


async def test_otlp_export_reaches_the_sink_and_its_file(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    sink = OtlpSink(out=out)
    await sink.start()
    telemetry = setup_telemetry("svc-otlp", sink.endpoint, 0, set_global=False)
    try:
        tracer = telemetry.tracer("t")
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner") as inner:
            inner.set_attribute("n", 7)
        await asyncio.to_thread(telemetry.flush)
        spans = await sink.wait_for_names("outer", "inner", timeout=10)
    finally:
        await asyncio.to_thread(telemetry.shutdown)
        await sink.stop()
    by_name = {s.name: s for s in spans}
    assert by_name["inner"].parent_span_id == by_name["outer"].span_id
    assert by_name["inner"].attributes == {"n": 7}
    assert by_name["outer"].service_name == "svc-otlp"
    assert by_name["outer"].start_ns <= by_name["inner"].start_ns <= by_name["inner"].end_ns
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    assert '"name": "inner"' in "".join(lines)
