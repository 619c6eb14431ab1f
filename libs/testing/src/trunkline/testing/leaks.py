"""Leak checks that random identifiers cannot trip.

A test that searches logs, spans or events for a card's digits ("4111") also searches their
trace, span, event and call ids and its nanosecond timestamps: random, and now and then holding
"4111" (CI runs failed on a span id ending in ...e724111 and on a span's ``start_ns``).
:func:`without_ids` takes out UUIDs, hex ids that have a letter in them and the values of
``*_ns`` / ``*_nano`` fields before the search; a card number (digits only) stays in.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX_ID = re.compile(
    r"(?<![0-9a-z])(?:0x)?(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![0-9a-z])", re.IGNORECASE
)


_NANOS = re.compile(r"(\"\w*(?:_ns|_nano|_nanos)\"\s*:\s*)\"?\d+\"?")


def without_ids(text: str) -> str:
    """``text`` without UUIDs, hex identifiers of 8+ characters with a letter a-f in them, and
    nanosecond timestamps (the values of JSON fields named ``*_ns`` or ``*_nano``)."""
    text = _NANOS.sub(r"\1<ns>", text)
    return _HEX_ID.sub("<id>", _UUID.sub("<id>", text))
