"""OpenTelemetry tracing/metrics, gRPC and NATS propagation, Prometheus endpoint."""
