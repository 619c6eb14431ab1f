"""Benchmark of the hitl service: approval and handoff round trips without the human's time."""
