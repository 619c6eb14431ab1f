"""The hitl pure core: ticket state transitions and the transcript summary (no I/O)."""
