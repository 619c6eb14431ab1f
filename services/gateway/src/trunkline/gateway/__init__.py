"""Call owner: transports, turn orchestration, events."""
