"""Escalations, human handoff and tool-call approvals."""
