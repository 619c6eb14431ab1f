"""W3C trace context across message headers (NATS) and gRPC metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def w3c_propagator() -> CompositePropagator:
    """The propagator every Trunkline process uses: W3C tracecontext plus baggage."""
    return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def install_propagator() -> None:
    """Make the W3C propagator the process-wide text-map propagator."""
    propagate.set_global_textmap(w3c_propagator())


def inject_headers(
    headers: Mapping[str, str] | None = None, context: Context | None = None
) -> dict[str, str]:
    """Return a copy of ``headers`` with ``traceparent`` (and baggage) of the current span."""
    carrier: dict[str, str] = dict(headers or {})
    w3c_propagator().inject(carrier, context=context)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by ``headers`` (an empty context when there is none)."""
    carrier = {key.lower(): value for key, value in (headers or {}).items()}
    return w3c_propagator().extract(carrier)


def metadata_to_dict(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """gRPC metadata as a plain dict of its text entries (binary ``-bin`` entries are skipped)."""
    result: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            result[key.lower()] = value
    return result
