from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from trunkline.gateway.fakes import RecordingSink
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import CallSummary, TurnRecord
from trunkline.gateway.settings import TenantConfig
from trunkline.gateway.transcripts import TranscriptPolicy, TranscriptSink, with_transcripts
from trunkline.redaction.transcripts import TranscriptStore, new_key

pytestmark = pytest.mark.unit

CARD = "4111 1111 1111 1111"


def _turn(tenant: str, call_id: str) -> TurnRecord:
    call = CallInfo(call_id, tenant, "acme-dental", "1.0.0")
    return TurnRecord(call, 0, user_text=f"my card is {CARD}", agent_text="Thanks.")


async def test_only_allowed_tenants_get_their_turns_stored_encrypted(tmp_path: Path) -> None:
    key = new_key()
    store = TranscriptStore(f"sqlite:///{tmp_path}/t.db")
    inner = RecordingSink()
    now = [1000.0]
    sink = TranscriptSink(
        inner,
        store,
        {
            "acme": TranscriptPolicy(store_unredacted=True, retention_days=1, key=SecretStr(key)),
            "volt": TranscriptPolicy(),
        },
        now=lambda: now[0],
    )
    await sink.turn_completed(_turn("acme", "CA1"))
    await sink.turn_completed(_turn("volt", "CA2"))
    assert len(inner.turns) == 2  # the real sink still gets every turn
    assert [c for _, c, _ in store.calls()] == ["CA1"]
    assert all(b"4111" not in blob for blob in store.ciphertexts("acme", "CA1"))
    policy = TranscriptPolicy(store_unredacted=True, key=SecretStr(key))
    (stored,) = store.read("acme", "CA1", policy.key_bytes)
    assert stored.record["caller"] == f"my card is {CARD}"
    now[0] += 2 * 86400  # past the one-day retention: the next call's end purges it
    await sink.call_ended(CallSummary(_turn("acme", "CA1").call, "caller hung up", 1, 3.0))
    assert store.calls() == []
    store.close()


async def test_a_failing_store_never_breaks_the_call(tmp_path: Path) -> None:
    store = TranscriptStore(f"sqlite:///{tmp_path}/t.db")
    with store.engine.begin() as db:
        db.exec_driver_sql("DROP TABLE transcript_turns")  # every write now fails
    inner = RecordingSink()
    policy = TranscriptPolicy(store_unredacted=True, key=SecretStr(new_key()))
    sink = TranscriptSink(inner, store, {"acme": policy})
    await sink.turn_completed(_turn("acme", "CA1"))
    await sink.call_ended(CallSummary(_turn("acme", "CA1").call, "caller hung up", 1, 3.0))
    assert len(inner.turns) == 1
    assert inner.ended.is_set()
    store.close()


def test_a_policy_that_stores_needs_a_valid_key() -> None:
    with pytest.raises(ValidationError, match="must be 32 bytes"):
        TenantConfig.model_validate(
            {"stream_secret": "s", "agents": ["a"],
             "transcripts": {"store_unredacted": True, "key": "c2hvcnQ="}}
        )  # fmt: skip
    assert not TenantConfig.model_validate(
        {"stream_secret": "s", "agents": ["a"]}
    ).transcripts.store_unredacted


def test_no_store_without_a_url_or_an_allowing_tenant() -> None:
    inner = RecordingSink()
    allowed = {"acme": TranscriptPolicy(store_unredacted=True, key=SecretStr(new_key()))}
    assert with_transcripts(inner, "", allowed) is inner
    assert with_transcripts(inner, "sqlite:///:memory:", {"acme": TranscriptPolicy()}) is inner
