"""Leak checks that random identifiers cannot trip.

A test that searches logs, spans or events for a card's digits ("4111") also searches their
trace, span, event and call ids: hex, random, and now and then containing "4111" (a CI run failed
on a span id ending in ...e724111). :func:`without_ids` takes out UUIDs and hex ids that have a
letter in them before the search; a card number (digits only) stays in.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX_ID = re.compile(
    r"(?<![0-9a-z])(?:0x)?(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![0-9a-z])", re.IGNORECASE
)


def without_ids(text: str) -> str:
    """``text`` without UUIDs and hex identifiers of 8+ characters with a letter a-f in them."""
    return _HEX_ID.sub("<id>", _UUID.sub("<id>", text))
