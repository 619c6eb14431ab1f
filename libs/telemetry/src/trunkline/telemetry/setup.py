"""Process-wide telemetry: traces to OTLP, metrics on a Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import grpc
from grpc import aio
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from trunkline.telemetry.grpc_interceptors import client_interceptors, server_interceptors
from trunkline.telemetry.prometheus import PrometheusReader, registry_for
from trunkline.telemetry.propagation import install_propagator
from trunkline.telemetry.redacting import RedactingSpanExporter

AttributeValue = str | bool | int | float


@dataclass(frozen=True)
class OtlpTls:
    """How spans reach the collector: plaintext (the default), or TLS verified against
    ``ca_file`` (the system CAs when None), with optional request ``headers``."""

    insecure: bool = True
    ca_file: Path | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse_headers(cls, text: str) -> tuple[tuple[str, str], ...]:
        """``"authorization=Bearer x,tenant=a"`` -> pairs; a pair without ``=`` is an error."""
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"OTLP header {item.split('=')[0]!r} is not key=value")
            pairs.append((key.strip().lower(), value.strip()))
        return tuple(pairs)


def otlp_exporter(endpoint: str, tls: OtlpTls) -> OTLPSpanExporter:
    """The OTLP/gRPC span exporter for ``endpoint`` with ``tls``'s transport and headers."""
    headers = dict(tls.headers) or None
    if tls.insecure:
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers)
    root = None
    if tls.ca_file is not None:
        if not tls.ca_file.is_file():
            raise FileNotFoundError(f"OTLP CA file {tls.ca_file} does not exist")
        root = tls.ca_file.read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return OTLPSpanExporter(
        endpoint=endpoint, insecure=False, credentials=credentials, headers=headers
    )


@dataclass
class Telemetry:
    """What :func:`setup_telemetry` built; pass it down instead of reaching for globals."""

    service_name: str
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry
    metrics_port: int | None = None
    _http: tuple[WSGIServer, threading.Thread] | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def server_interceptors(self) -> list[aio.ServerInterceptor]:
        return server_interceptors(self.tracer_provider, self.meter_provider)

    def client_interceptors(self) -> list[aio.ClientInterceptor]:
        return client_interceptors(self.tracer_provider, self.meter_provider)

    def metrics_text(self) -> str:
        """What a scrape of ``/metrics`` would return now."""
        return generate_latest(self.registry).decode()

    def flush(self, timeout_millis: int = 10_000) -> bool:
        """Export every finished span now; True when the exporter kept up."""
        return self.tracer_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop exporters and the metrics endpoint. Safe to call twice.

        It blocks while spans are exported: from a coroutine whose event loop also serves the
        receiver (a test's in-process sink), call it through ``asyncio.to_thread``.
        """
        if self._closed:
            return
        self._closed = True
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_telemetry(
    service_name: str,
    otlp_endpoint: str | None,
    metrics_port: int | None,
    *,
    resource_attrs: Mapping[str, AttributeValue] | None = None,
    span_exporter: SpanExporter | None = None,
    metrics_addr: str = "0.0.0.0",
    set_global: bool = True,
    otlp_tls: OtlpTls | None = None,
) -> Telemetry:
    """Build tracing and metrics for one process.

    - ``otlp_endpoint`` (``host:port``): spans go there over OTLP/gRPC in batches, plaintext
      unless ``otlp_tls`` says otherwise (TLS, a CA, headers such as a bearer token).
    - ``span_exporter``: an extra exporter fed synchronously (tests: an in-memory exporter).
    - Every exporter gets the spans with their caller text redacted (PII: cards, accounts,
      phones, e-mail, addresses, dates of birth), see :mod:`trunkline.telemetry.redacting`.
    - ``metrics_port``: serve ``/metrics`` there; ``0`` or ``None`` serves nothing (the
      registry is still readable through :meth:`Telemetry.metrics_text`).
    - ``set_global``: install the providers and the W3C propagator process-wide (once per
      process; tests pass False and use the returned providers).
    """
    resource = Resource({"service.name": service_name, **dict(resource_attrs or {})})
    tracer_provider = TracerProvider(resource=resource)
    if otlp_endpoint:
        exporter = otlp_exporter(otlp_endpoint, otlp_tls or OtlpTls())
        tracer_provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(exporter)))
    if span_exporter is not None:
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(RedactingSpanExporter(span_exporter))
        )

    reader = PrometheusReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    registry = registry_for(reader)
    telemetry = Telemetry(service_name, tracer_provider, meter_provider, registry)
    if metrics_port:
        server, thread = start_http_server(metrics_port, addr=metrics_addr, registry=registry)
        telemetry._http = (server, thread)
        telemetry.metrics_port = server.server_port

    if set_global:
        install_propagator()
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return telemetry
