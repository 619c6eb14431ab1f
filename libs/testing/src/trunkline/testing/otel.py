"""In-memory OpenTelemetry for unit tests: spans and metric points a test can assert on."""

from __future__ import annotations

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer


class InMemoryOtel:
    """A private tracer and meter (no globals touched); call ``shutdown()`` when done."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def tracer(self, name: str = "test") -> Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str = "test") -> Meter:
        return self.meter_provider.get_meter(name)

    def metric_points(self, name: str) -> list[object]:
        """Every data point recorded so far for the metric called ``name``."""
        data = self.metrics.get_metrics_data()
        points: list[object] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()
