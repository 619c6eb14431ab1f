"""PII redaction at the edge of the trace and log sinks (issue 13).

:class:`RedactingSpanExporter` wraps any span exporter (OTLP, the in-memory one of tests) and
hands it copies of the spans whose string attributes, event attributes and status text went
through :func:`trunkline.redaction.redact`; :func:`setup_telemetry` wraps every exporter it
builds. :class:`RedactingFilter` does the same for log records (message, ``extra=`` fields,
exception text); :func:`configure_logging` installs it on its handler.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from trunkline.redaction import redact
from trunkline.redaction.messages import keep, redact_attributes

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` with its caller text redacted (ids, times and links unchanged)."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact(status.description))
    events = [
        Event(event.name, redact_attributes(event.attributes), event.timestamp)
        for event in span.events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Exports through ``inner`` what :func:`redacted_span` leaves of each span."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RedactingFilter(logging.Filter):
    """Redacts a record's message, its string ``extra=`` fields and its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str) and not keep(key):
                setattr(record, key, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
