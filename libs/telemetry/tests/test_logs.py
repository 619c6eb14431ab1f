"""JSON log lines carry time, level, logger, message, the current span and the bound call."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from trunkline.telemetry import bind_call, configure_logging
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_has_trace_and_call_fields(
    stream: io.StringIO, span_recorder: SpanRecorder
) -> None:
    configure_logging("DEBUG", json=True, stream=stream)
    log = logging.getLogger("trunkline.test")
    with (
        bind_call("call-1", "tenant-a"),
        trace.get_tracer("test").start_as_current_span("turn") as span,
    ):
        log.info("hello %s", "world", extra={"turn": 3})
    log.debug("outside")

    inside, outside = _lines(stream)
    context = span.get_span_context()
    assert inside["message"] == "hello world"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "trunkline.test"
    assert str(inside["timestamp"]).endswith("+00:00")
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert (inside["call_id"], inside["tenant_id"]) == ("call-1", "tenant-a")
    assert inside["turn"] == 3
    assert outside["level"] == "DEBUG"
    assert {"trace_id", "span_id", "call_id", "tenant_id"}.isdisjoint(outside)


def test_level_filters_and_reconfigure_replaces_handler(stream: io.StringIO) -> None:
    configure_logging("WARNING", json=True, stream=io.StringIO())
    configure_logging("WARNING", json=True, stream=stream)
    log = logging.getLogger("trunkline.test")
    log.info("dropped")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    (line,) = _lines(stream)
    assert line["message"] == "failed"
    assert "ValueError: boom" in str(line["exception"])


def test_text_format(stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, stream=stream)
    with bind_call("call-9"):
        logging.getLogger("x").info("plain")
    text = stream.getvalue()
    assert "INFO" in text
    assert "x: plain" in text
    assert "call_id=call-9" in text
