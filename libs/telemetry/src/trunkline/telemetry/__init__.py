"""OpenTelemetry tracing/metrics, gRPC and NATS propagation, Prometheus endpoint.

One process calls :func:`setup_telemetry` once at start-up and :func:`configure_logging`;
gRPC servers and channels take :func:`server_interceptors` / :func:`client_interceptors`;
message headers carry the trace through :func:`inject_headers` / :func:`extract_context`.
"""

from trunkline.telemetry.grpc_interceptors import client_interceptors, server_interceptors
from trunkline.telemetry.logs import bind_call, configure_logging, current_call
from trunkline.telemetry.propagation import extract_context, inject_headers
from trunkline.telemetry.setup import Telemetry, setup_telemetry

__all__ = [
    "Telemetry",
    "bind_call",
    "client_interceptors",
    "configure_logging",
    "current_call",
    "extract_context",
    "inject_headers",
    "server_interceptors",
    "setup_telemetry",
]
