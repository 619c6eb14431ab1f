"""Backends of the hitl service behind small ABCs (summaries)."""
