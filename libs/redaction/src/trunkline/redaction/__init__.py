"""Data governance: PII detectors and redaction at every sink, prompt-injection screens, and the
encrypted transcript store (``trunkline calls purge``)."""

from trunkline.redaction.pii import PLACEHOLDERS, Entity, Finding, detect, redact, redact_facts

__all__ = ["PLACEHOLDERS", "Entity", "Finding", "detect", "redact", "redact_facts"]
