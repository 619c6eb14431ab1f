"""Backends behind small ABCs: the public method owns retries, timeouts, metrics and tracing."""
