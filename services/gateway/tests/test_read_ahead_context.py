"""The turn keeps the read-ahead's rendering of its context when both hold the same items."""

from __future__ import annotations

import pytest

from trunkline.gateway.peers.types import Citation, ContextResult
from trunkline.gateway.pipeline import same_facts_first

pytestmark = pytest.mark.unit

HOURS, PARKING, PRICES = Citation("faq#1"), Citation("faq#2"), Citation("prices#1")


def result(*items: tuple[Citation, str], confidence: float = 0.7) -> ContextResult:
    return ContextResult(
        block="\n".join(f"[{i}] {text}" for i, (_, text) in enumerate(items, 1)),
        citations=tuple(c.id for c, _ in items),
        confidence=confidence,
        token_count=10 * len(items),
        sources=tuple(c for c, _ in items),
    )


def test_the_same_items_in_another_order_keep_the_read_ahead_block() -> None:
    ahead = result((HOURS, "Open 8 to 6."), (PARKING, "Parking behind."))
    final = result((PARKING, "Parking behind."), (HOURS, "Open 8 to 6."), confidence=0.9)
    kept = same_facts_first(final, ahead)
    assert kept.block == ahead.block
    assert kept.citations == ("faq#1", "faq#2")
    assert kept.sources == (HOURS, PARKING)  # in the order of the block's [n]
    assert kept.confidence == 0.9  # the turn's own retrieval figures


def test_other_items_or_no_read_ahead_leave_the_turn_context_alone() -> None:
    ahead = result((HOURS, "Open 8 to 6."), (PARKING, "Parking behind."))
    final = result((PRICES, "Filling 150."), (HOURS, "Open 8 to 6."))
    assert same_facts_first(final, ahead) == final
    assert same_facts_first(final, None) == final
    assert same_facts_first(ContextResult(), ahead) == ContextResult()
