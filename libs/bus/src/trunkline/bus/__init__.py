"""NATS and JetStream wrapper with trace propagation."""
