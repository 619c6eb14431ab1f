import base64
import os
from pathlib import Path

import pytest

from trunkline.redaction.cli import key_env, main
from trunkline.redaction.transcripts import (
    TranscriptDecryptError,
    TranscriptKeyError,
    TranscriptStore,
    new_key,
    parse_key,
)

pytestmark = pytest.mark.unit

CARD = "4111 1111 1111 1111"


@pytest.fixture
def store(tmp_path: Path) -> TranscriptStore:
    s = TranscriptStore(f"sqlite:///{tmp_path}/t.db")
    yield s  # type: ignore[misc]
    s.close()


def test_turns_are_sealed_per_tenant_and_read_back(store: TranscriptStore) -> None:
    key, other = parse_key(new_key(), "acme"), parse_key(new_key(), "volt")
    store.append("acme", "CA1", 0, {"caller": f"card {CARD}"}, key, now=100.0, retention_s=60)
    store.append("acme", "CA1", 1, {"caller": "thanks"}, key, now=101.0, retention_s=60)
    (sealed, _) = store.ciphertexts("acme", "CA1")
    assert b"4111" not in sealed
    assert b"card" not in sealed
    assert [t.record["caller"] for t in store.read("acme", "CA1", key)] == [
        f"card {CARD}",
        "thanks",
    ]
    with pytest.raises(TranscriptDecryptError, match="the key does not open it"):
        store.read("acme", "CA1", other)
    assert store.read("volt", "CA1", other) == []  # another tenant sees nothing


def test_retention_and_purge_by_call(store: TranscriptStore) -> None:
    key = parse_key(new_key(), "acme")
    store.append("acme", "CA1", 0, {"caller": "a"}, key, now=0.0, retention_s=10)
    store.append("acme", "CA2", 0, {"caller": "b"}, key, now=0.0, retention_s=1000)
    store.append("acme", "CA3", 0, {"caller": "c"}, key, now=0.0, retention_s=1000)
    assert store.purge_expired(now=50.0) == 1
    assert [c for _, c, _ in store.calls("acme")] == ["CA2", "CA3"]
    assert store.purge_call("CA2") == 1
    assert [c for _, c, _ in store.calls()] == ["CA3"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no transcript key configured"),
        ("not base64!!", "not base64|must be 32 bytes"),
        (base64.urlsafe_b64encode(b"short").decode(), "must be 32 bytes, got 5"),
    ],
)
def test_bad_keys_are_named_without_showing_them(text: str, message: str) -> None:
    with pytest.raises(TranscriptKeyError, match=message) as info:
        parse_key(text, "acme")
    assert "acme" in str(info.value)
    if text:
        assert text not in str(info.value)


def test_cli_purge_by_call_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    key_text = new_key()
    store = TranscriptStore(url)
    store.append(
        "acme", "CA9", 0, {"caller": CARD}, parse_key(key_text, "acme"), now=0, retention_s=9
    )
    store.close()
    os.environ[key_env("acme")] = key_text
    try:
        assert main(["show", "--url", url, "--tenant", "acme", "--call-id", "CA9"]) == 0
        assert CARD in capsys.readouterr().out
    finally:
        del os.environ[key_env("acme")]
    assert main(["purge", "--url", url, "--call-id", "CA9"]) == 0
    assert "deleted 1 turns of call CA9" in capsys.readouterr().out
    assert main(["purge", "--url", url, "--call-id", "CA9"]) == 1
    assert "no stored transcript for call 'CA9'" in capsys.readouterr().err
