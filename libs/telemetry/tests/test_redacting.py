import io
import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from trunkline.telemetry import logs
from trunkline.telemetry.setup import setup_telemetry

pytestmark = pytest.mark.unit

CARD = "4111 1111 1111 1111"


def test_every_exporter_gets_spans_with_caller_text_redacted() -> None:
    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry("t", None, None, span_exporter=exporter, set_global=False)
    tracer = telemetry.tracer("t")
    with tracer.start_as_current_span("turn") as span:
        span.set_attribute("turn.user_text", f"my card is {CARD}")
        span.set_attribute("tool.call_id", "4111111111111111")  # an id: kept as is
        span.add_event("said", {"text": "call me on 415-555-0132"})
        span.set_status(Status(StatusCode.ERROR, f"tool failed for {CARD}"))
    telemetry.shutdown()
    (done,) = exporter.get_finished_spans()
    assert done.attributes is not None
    assert done.attributes["turn.user_text"] == "my card is [CARD]"
    assert done.attributes["tool.call_id"] == "4111111111111111"
    assert done.events[0].attributes == {"text": "call me on [PHONE]"}
    assert done.status.description == "tool failed for [CARD]"
    assert done.context == span.get_span_context()


def test_log_lines_are_redacted() -> None:
    stream = io.StringIO()
    logs.configure_logging("INFO", json=True, stream=stream)
    log = logging.getLogger("redaction-test")
    try:
        log.info("caller said %s", f"card {CARD}", extra={"utterance": "email jo@example.com"})
        try:
            raise ValueError(f"bad card {CARD}")
        except ValueError:
            log.exception("failed")
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logs._TrunklineHandler)]:
            root.removeHandler(handler)
    text = stream.getvalue()
    assert CARD not in text
    assert "4111" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "caller said card [CARD]"
    assert first["utterance"] == "email [EMAIL]"
    assert "ValueError: bad card [CARD]" in second["exception"]
