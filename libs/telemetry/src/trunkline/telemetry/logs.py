"""Structured logging: JSON lines carrying the current trace and the bound call."""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

from trunkline.telemetry.redacting import RedactingFilter

_CALL_ID: ContextVar[str | None] = ContextVar("trunkline_call_id", default=None)
_TENANT_ID: ContextVar[str | None] = ContextVar("trunkline_tenant_id", default=None)

# Attributes every LogRecord has; anything else came in through ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


@contextmanager
def bind_call(call_id: str, tenant_id: str | None = None) -> Iterator[None]:
    """Tag every log line written inside the block (in this task) with the call and tenant."""
    call_token = _CALL_ID.set(call_id)
    tenant_token = _TENANT_ID.set(tenant_id)
    try:
        yield
    finally:
        _TENANT_ID.reset(tenant_token)
        _CALL_ID.reset(call_token)


def current_call() -> tuple[str | None, str | None]:
    """The ``(call_id, tenant_id)`` bound by :func:`bind_call`, if any."""
    return _CALL_ID.get(), _TENANT_ID.get()


def log_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of one record: time, level, logger, message, trace, call, extras."""
    fields: dict[str, Any] = {
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        fields["trace_id"] = format(span_context.trace_id, "032x")
        fields["span_id"] = format(span_context.span_id, "016x")
    call_id, tenant_id = current_call()
    if call_id is not None:
        fields["call_id"] = call_id
    if tenant_id is not None:
        fields["tenant_id"] = tenant_id
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and key not in fields:
            fields[key] = value
    if record.exc_text:
        fields["exception"] = record.exc_text  # redacted by RedactingFilter
    elif record.exc_info:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return jsonlib.dumps(log_fields(record), default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the same fields as the JSON form."""

    def format(self, record: logging.LogRecord) -> str:
        fields = log_fields(record)
        head = f"{fields.pop('timestamp')} {fields.pop('level'):<7} {fields.pop('logger')}"
        message = fields.pop("message")
        exception = fields.pop("exception", None)
        tail = " ".join(f"{key}={value}" for key, value in fields.items())
        line = f"{head}: {message}" + (f" [{tail}]" if tail else "")
        return f"{line}\n{exception}" if exception else line


class _TrunklineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker type so a second :func:`configure_logging` replaces the first handler."""


def configure_logging(
    level: str | int = "INFO", json: bool = True, stream: IO[str] | None = None
) -> None:
    """Configure the root logger once per process: JSON lines (or text) to ``stream`` (stderr),
    with PII redacted from every record (:class:`RedactingFilter`)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _TrunklineHandler)]:
        root.removeHandler(handler)
    handler = _TrunklineHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
