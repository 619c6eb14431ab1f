"""Local NATS (JetStream) and Redis processes for tests and the dev stack."""
