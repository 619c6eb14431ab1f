"""Fixtures shared by the ledger tests: price tables, a demo call's facts, a PostgreSQL server."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from trunkline.ledger.facts import CallEndFact, CallKey, EscalationFact, Fact, TurnFact
from trunkline.ledger.outcomes import EndReason
from trunkline.ledger.prices import PriceTable, load_price_dir
from trunkline.ledger.pricing import Usage

ROOT = Path(__file__).resolve().parents[3]
DEMO_START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
DEMO = CallKey("acme", "demo-call-1", "acme-dental", "1.0.0")


@pytest.fixture
def tables() -> dict[str, PriceTable]:
    """The repository's own price tables (``prices/``)."""
    return load_price_dir(ROOT / "prices")


def demo_call(key: CallKey = DEMO, start: datetime = DEMO_START) -> list[Fact]:
    """The demo's five turns (hours, a price, a barge-in, an account lookup, goodbye) with
    usage as the gateway reports it, then the call's end after 94.32 s."""
    usage = [
        Usage(stt_seconds=Decimal("2.140"), tts_characters=112),  # hours: knowledge
        Usage(stt_seconds=Decimal("2.880"), prompt_tokens=812, cached_tokens=640,
              completion_tokens=41, tts_characters=167),  # a price: LLM
        Usage(stt_seconds=Decimal("3.020"), prompt_tokens=845, cached_tokens=790,
              completion_tokens=12, tts_characters=38),  # barge-in: LLM, cut short
        Usage(stt_seconds=Decimal("4.460"), prompt_tokens=1020, cached_tokens=0,
              completion_tokens=55, tts_characters=201, tools=("lookup_account",)),
        Usage(stt_seconds=Decimal("1.900"), tts_characters=64),  # goodbye
    ]  # fmt: skip
    sources = ("knowledge", "llm", "llm", "llm", "goodbye")
    facts: list[Fact] = [
        TurnFact(
            event_id=f"{key.call_id}-turn-{i}",
            occurred_at=start + timedelta(seconds=15 * (i + 1)),
            call=key,
            turn_index=i,
            usage=u,
            reply_source=sources[i],
            intent="goodbye" if i == 4 else "question",
            hang_up=i == 4,
            succeeded_tools=u.tools,
        )
        for i, u in enumerate(usage)
    ]
    facts.append(
        CallEndFact(
            event_id=f"{key.call_id}-ended",
            occurred_at=start + timedelta(seconds=94.32),
            call=key,
            end_reason=EndReason.AGENT_HANGUP,
            duration_seconds=Decimal("94.320"),
            turn_count=5,
        )
    )
    return facts


@pytest.fixture
def demo_facts() -> list[Fact]:
    return demo_call()


def escalated_call(call_id: str) -> list[Fact]:
    key = CallKey("acme", call_id, "acme-dental", "1.0.0")
    turn = TurnFact(
        f"{call_id}-turn-0", DEMO_START, key, 0, Usage(stt_seconds=Decimal("1.000")), "llm"
    )
    end = CallEndFact(
        f"{call_id}-ended", DEMO_START + timedelta(seconds=30), key, EndReason.CALLER_HANGUP,
        Decimal("30.000"), 1,
    )  # fmt: skip
    late = EscalationFact(f"{call_id}-escalation", DEMO_START + timedelta(seconds=31), key)
    return [turn, end, late]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL 16 server of its own (the ``pgserver`` wheel), on a Unix socket in a fresh
    folder, stopped and removed after the test."""
    folder = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set (as root)
        warnings.simplefilter("ignore")
        import pgserver  # noqa: PLC0415 - a dev dependency; imported only where PostgreSQL runs

        server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
