"""Pricing is exact: usage x rate in Decimal, line by line, and price tables fail loudly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from trunkline.ledger.prices import PriceTableError, load_price_dir, parse_price_table
from trunkline.ledger.pricing import (
    Component,
    Usage,
    billed_minutes,
    from_picos,
    price,
    seconds,
    to_picos,
    total,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
TABLE = """\
tenant: acme
currency: USD
versions:
  - version: v1
    effective_from: 2026-01-01T00:00:00Z
    stt: {per_second: 0.0004}
    llm: {prompt_per_1k: 0.00015, cached_per_1k: 0.000075, completion_per_1k: 0.0006}
    tts: {per_character: 0.000015}
    telephony: {per_minute: 0.0085}
    tools: {per_call: 0.0001, per_tool: {lookup_account: 0.0005}}
  - version: v2
    effective_from: 2026-06-01T00:00:00Z
    stt: {per_second: 0.000333333}
    llm: {prompt_per_1k: 0.000123456, completion_per_1k: 0.0006}
    tts: {per_second: 0.002}
"""


def test_a_turn_costs_exactly_usage_times_price() -> None:
    table = parse_price_table(TABLE, "acme.yaml")
    rates = table.at(datetime(2026, 3, 1, tzinfo=UTC))
    usage = Usage(
        stt_seconds=Decimal("3.217"), prompt_tokens=1234, cached_tokens=1000,
        completion_tokens=57, tts_characters=143, tools=("lookup_account", "lookup_account", "x"),
    )  # fmt: skip
    lines = {(line.component, line.item): line for line in price(usage, rates)}
    assert lines[(Component.STT, "audio")].cost == Decimal("0.0012868")  # 3.217 * 0.0004
    assert lines[(Component.LLM, "prompt")].cost == Decimal("0.0000351")  # 234 * 0.00015 / 1000
    assert lines[(Component.LLM, "cached")].cost == Decimal("0.000075")  # 1000 * 0.000075 / 1000
    assert lines[(Component.LLM, "completion")].cost == Decimal("0.0000342")  # 57 * 0.0006 / 1000
    assert lines[(Component.TTS, "characters")].cost == Decimal("0.002145")  # 143 * 0.000015
    assert lines[(Component.TOOL, "lookup_account")].quantity == 2
    assert lines[(Component.TOOL, "lookup_account")].cost == Decimal("0.001")
    assert lines[(Component.TOOL, "x")].cost == Decimal("0.0001")  # the default per_call
    assert total(list(lines.values())) == Decimal("0.0046761")
    assert all(type(line.cost) is Decimal for line in lines.values())


def test_the_version_in_force_prices_and_nine_place_rates_stay_exact() -> None:
    table = parse_price_table(TABLE, "acme.yaml")
    rates = table.at(datetime(2026, 6, 1, tzinfo=UTC))  # the first instant of v2
    assert rates.version == "v2"
    usage = Usage(stt_seconds=Decimal("0.001"), prompt_tokens=7, tts_seconds=Decimal("1.5"))
    lines = {(line.component, line.item): line for line in price(usage, rates)}
    assert lines[(Component.STT, "audio")].cost == Decimal("0.000000333333")
    assert lines[(Component.LLM, "prompt")].cost == Decimal("0.000000864192")
    assert lines[(Component.TTS, "audio")].cost == Decimal("0.003")  # per second in v2
    for line in lines.values():
        assert from_picos(to_picos(line.cost)) == line.cost
    with pytest.raises(LookupError, match="no prices before 2026-01-01"):
        table.at(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("duration", "minutes"), [("0", 0), ("0.001", 1), ("60", 1), ("60.001", 2), ("125.5", 3)]
)
def test_telephony_bills_started_minutes(duration: str, minutes: int) -> None:
    assert billed_minutes(Decimal(duration)) == minutes
    rates = parse_price_table(TABLE, "t.yaml").versions[0]
    lines = price(Usage(telephony_seconds=Decimal(duration)), rates)
    assert total(lines) == Decimal("0.0085") * minutes


def test_event_floats_become_exact_milliseconds() -> None:
    assert seconds(1.2345) == Decimal("1.235")  # half up on the decimal text, not the binary
    assert seconds(0.1 + 0.2) == Decimal("0.300")
    with pytest.raises(ValueError, match="milliseconds"):
        Usage(stt_seconds=Decimal("0.0001"))
    with pytest.raises(ValueError, match="exceeds prompt_tokens"):
        Usage(prompt_tokens=3, cached_tokens=4)


def test_the_sample_price_tables_load() -> None:
    tables = load_price_dir(ROOT / "prices")
    assert tables["acme"].currency == "USD"
    assert tables["acme"].versions[0].llm.prompt_per_1k == Decimal("0.00015")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TABLE.replace("0.0004}", "cheap}"), "acme.yaml:6: versions.0.stt.per_second"),
        (TABLE.replace("0.0085}", "-1}"), "acme.yaml:9: versions.0.telephony.per_minute"),
        (TABLE.replace("0.000015}", "0.0000000001}"), "acme.yaml:8: .*more than 9 decimal"),
        (TABLE.replace("stt: {per_second: 0.0004}", "sst: {per_second: 1}"),
         "acme.yaml:6: versions.0.sst: Extra"),
        (TABLE.replace("currency: USD", "currency: dollars"), "acme.yaml:2: currency"),
        (TABLE.replace("2026-06-01T00:00:00Z", "2025-06-01T00:00:00Z"), "oldest first"),
        (TABLE.replace("version: v2", "version: v1"), "versions named twice: v1"),
        (TABLE.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00"), "acme.yaml:5: .*time zone"),
        (TABLE.replace("tts: {per_second: 0.002}", "tts: {per_second: 0.002, per_character: 1}"),
         "acme.yaml:15: versions.1.tts: .*not both"),
        ("tenant: acme\ncurrency: USD\nversions: [\n", "acme.yaml:4: not valid YAML"),
        ("- just\n- a list\n", "acme.yaml:1: a price table is a mapping"),
    ],
)  # fmt: skip
def test_a_malformed_table_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PriceTableError, match=message):
        parse_price_table(text, "acme.yaml")


def test_two_files_for_one_tenant_and_a_missing_folder_fail(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TABLE)
    (tmp_path / "b.yaml").write_text(TABLE)
    with pytest.raises(
        PriceTableError, match=r"b.yaml:1: tenant 'acme' already priced by .*a.yaml"
    ):
        load_price_dir(tmp_path)
    with pytest.raises(PriceTableError, match="no such price table folder"):
        load_price_dir(tmp_path / "missing")
