"""Reading a call's trace back from Jaeger's query API (the local stack's trace backend).

Spans come back in the shape of the OTLP sink's ``spans.jsonl`` records (``trace_id``,
``span_id``, ``parent_span_id``, ``name``, ``service_name``, ``attributes``), so whoever checks
a trace's tree can read it from either.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

Span = dict[str, Any]

CALL_SPAN = "call"
CALL_ID = "call.id"


class TraceQueryError(RuntimeError):
    """Jaeger's query API answered with an error, or not at all."""


def _get(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise TraceQueryError(f"GET {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TraceQueryError(f"GET {url}: {exc}") from exc


def trace_url(base_url: str, trace_id: str) -> str:
    """The trace's page in the Jaeger UI."""
    return f"{base_url}/trace/{trace_id}"


def trace_api_url(base_url: str, trace_id: str) -> str:
    """The trace as JSON from the query API."""
    return f"{base_url}/api/traces/{trace_id}"


def _tag_value(tag: dict[str, Any]) -> Any:
    return tag.get("value")


def jaeger_spans(trace: dict[str, Any]) -> list[Span]:
    """The spans of one trace of the query API's JSON (``data[i]``), normalized."""
    processes = trace.get("processes", {})
    spans = []
    for span in trace.get("spans", []):
        parents = [
            r["spanID"]
            for r in span.get("references", [])
            if r.get("refType") == "CHILD_OF" and r.get("traceID") == span["traceID"]
        ]
        process = processes.get(span.get("processID"), {})
        spans.append(
            {
                "trace_id": span["traceID"],
                "span_id": span["spanID"],
                "parent_span_id": parents[0] if parents else "",
                "name": span["operationName"],
                "service_name": process.get("serviceName", ""),
                "attributes": {t["key"]: _tag_value(t) for t in span.get("tags", [])},
                "start_us": span.get("startTime", 0),
                "duration_us": span.get("duration", 0),
            }
        )
    return spans


def call_trace_ids(base_url: str, call_id: str, *, timeout: float = 5.0) -> list[str]:
    """Ids of the traces holding a gateway ``call`` span with ``call.id`` = ``call_id``."""
    query = urllib.parse.urlencode(
        {
            "service": "gateway",
            "operation": CALL_SPAN,
            "tags": json.dumps({CALL_ID: call_id}),
            "lookback": "6h",
            "limit": "20",
        }
    )
    found = _get(f"{base_url}/api/traces?{query}", timeout) or {}
    return sorted({str(t["traceID"]) for t in found.get("data") or []})


def trace_spans(base_url: str, trace_id: str, *, timeout: float = 5.0) -> list[Span]:
    """Every span Jaeger holds for ``trace_id`` (empty when it has none)."""
    found = _get(trace_api_url(base_url, trace_id), timeout) or {}
    return [span for trace in found.get("data") or [] for span in jaeger_spans(trace)]


def wait_for_call_trace(
    base_url: str, call_id: str, *, services: set[str], limit_s: float = 30.0
) -> tuple[str, list[Span]]:
    """Poll until the call's trace is in Jaeger with spans of every one of ``services``
    (the services export in batches); return its id and spans."""
    deadline = time.monotonic() + limit_s
    seen: set[str] = set()
    while True:
        ids = call_trace_ids(base_url, call_id)
        if len(ids) == 1:
            spans = trace_spans(base_url, ids[0])
            seen = {s["service_name"] for s in spans}
            if services <= seen:
                return ids[0], spans
        elif len(ids) > 1:
            raise TraceQueryError(f"call {call_id} is in {len(ids)} traces: {ids}")
        if time.monotonic() > deadline:
            raise TraceQueryError(
                f"call {call_id}: no trace in Jaeger at {base_url} with spans of "
                f"{sorted(services)} within {limit_s:.0f}s (traces {ids}, services {sorted(seen)})"
            )
        time.sleep(0.5)
