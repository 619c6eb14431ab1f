"""Fakes, stage harness, fake clock, OTLP receiver and real NATS/Redis fixtures."""
