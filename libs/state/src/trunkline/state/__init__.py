"""Per-call state in Redis with TTL and optimistic concurrency."""
