"""OpenTelemetry metrics exposed through one per-service ``prometheus_client`` registry."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    MetricReader,
    MetricsData,
    Sum,
)
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def prometheus_name(name: str, unit: str = "") -> str:
    """``rpc.server.duration`` with unit ``ms`` -> ``rpc_server_duration_ms``."""
    base = _INVALID.sub("_", name)
    suffix = _INVALID.sub("_", unit) if unit and unit != "1" else ""
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


class PrometheusReader(MetricReader):
    """A pull reader: each scrape of the registry collects the SDK's metrics once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def snapshot(self) -> MetricsData | None:
        """Collect now and return what the SDK produced."""
        with self._lock:
            self._latest = None
            self.collect()
            return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None


class _ReaderCollector(Collector):
    def __init__(self, reader: PrometheusReader) -> None:
        self._reader = reader

    def collect(self) -> Iterable[Metric]:
        data = self._reader.snapshot()
        if data is None:
            return []
        return list(_families(data))


def _labels(attributes: Any) -> dict[str, str]:
    return {
        _INVALID.sub("_", str(key)): str(value) for key, value in dict(attributes or {}).items()
    }


def _families(data: MetricsData) -> Iterator[Metric]:
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from _family(
                    metric.name, metric.unit or "", metric.description or "", metric.data
                )


def _family(name: str, unit: str, doc: str, data: Any) -> Iterator[Metric]:
    full = prometheus_name(name, unit)
    points: Sequence[Any] = data.data_points
    keys = sorted({key for point in points for key in _labels(point.attributes)})
    if isinstance(data, Sum) and data.is_monotonic:
        counter = CounterMetricFamily(full, doc, labels=keys)
        for point in points:
            counter.add_metric(_values(point, keys), point.value)
        yield counter
    elif isinstance(data, Sum | Gauge):
        gauge = GaugeMetricFamily(full, doc, labels=keys)
        for point in points:
            gauge.add_metric(_values(point, keys), point.value)
        yield gauge
    elif isinstance(data, Histogram):
        histogram = HistogramMetricFamily(full, doc, labels=keys)
        for point in points:
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            bounds = [*(str(float(b)) for b in point.explicit_bounds), "+Inf"]
            for bound, count in zip(bounds, point.bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            histogram.add_metric(_values(point, keys), buckets, point.sum)
        yield histogram


def _values(point: Any, keys: list[str]) -> list[str]:
    labels = _labels(point.attributes)
    return [labels.get(key, "") for key in keys]


def registry_for(reader: PrometheusReader) -> CollectorRegistry:
    """A fresh registry (not the process-global one) that serves ``reader``'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReaderCollector(reader))
    return registry
