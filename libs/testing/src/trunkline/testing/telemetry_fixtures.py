"""Pytest plugin: trace receivers for tests. Registered by the root ``conftest.py``.

- ``otlp_sink`` (function): a started :class:`~trunkline.telemetry.sink.OtlpSink` on a free
  loopback port, fresh for each test; give ``otlp_sink.endpoint`` to the processes under test.
- ``span_recorder`` (function): a :class:`SpanRecorder` whose TracerProvider is also the
  process-wide one, emptied before each test; ``span_recorder.provider`` for code that takes
  a provider, plain ``trace.get_tracer()`` works too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trunkline.telemetry.propagation import install_propagator
from trunkline.telemetry.sink import OtlpSink


class SpanRecorder:
    """Finished spans of this process, in the order they ended."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (AssertionError if none or several)."""
        found = [span for span in self.spans() if span.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def clear(self) -> None:
        self.exporter.clear()


def install_recorder() -> SpanRecorder:
    """Record every span of this process: become the global provider, or join it if set."""
    exporter = InMemorySpanExporter()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_propagator()
    return SpanRecorder(provider, exporter)


@pytest.fixture(scope="session")
def _session_span_recorder() -> SpanRecorder:
    return install_recorder()


@pytest.fixture
def span_recorder(_session_span_recorder: SpanRecorder) -> Iterator[SpanRecorder]:
    """In-memory spans of this process, empty at the start of the test."""
    _session_span_recorder.clear()
    yield _session_span_recorder
    _session_span_recorder.clear()


@pytest_asyncio.fixture
async def otlp_sink() -> AsyncIterator[OtlpSink]:
    """A real OTLP/gRPC trace receiver on a free loopback port, new for each test."""
    sink = OtlpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop(grace=None)
