"""Random ids cannot trip a leak check; the digits it looks for still do."""

from __future__ import annotations

import re

import pytest

from trunkline.testing.leaks import without_ids

pytestmark = pytest.mark.unit

LEAKS = re.compile(r"4111")


def test_ids_are_taken_out_and_card_digits_stay() -> None:
    text = (
        '{"trace_id": "71bd0ef017b01623d114702dac503bf8", "span_id": "caa681988e724111", '
        '"event": "0x41116a2b3c4d5e6f", "id": "4b1e4111-aaaa-4111-8111-000000004111"} '
        "card 4111111111111111 and 4111 1111 1111 1111"
    )
    cleaned = without_ids(text)
    assert "caa681988e724111" not in cleaned
    assert "4b1e4111" not in cleaned
    assert "0x41116a2b3c4d5e6f" not in cleaned
    assert len(LEAKS.findall(cleaned)) == 2  # the card, written whole and in groups
    assert not LEAKS.search(without_ids('span_id="caa681988e724111"'))
    spans = '{"start_ns": 1796396252441115115, "end_ns": "1796396252441110000", "card": "4111"}'
    assert without_ids(spans).count("4111") == 1  # the card field's, not the timestamps'
