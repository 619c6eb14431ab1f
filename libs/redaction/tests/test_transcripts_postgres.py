"""The transcript store on a real PostgreSQL 16 server (the ``pgserver`` wheel, as the ledger's
tests): turns sealed per tenant, nothing readable in the table, retention and purge by call,
and ``trunkline calls`` against it with the key from the tenants file."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from trunkline.redaction.cli import main
from trunkline.redaction.transcripts import (
    TURNS,
    TranscriptDecryptError,
    TranscriptStore,
    new_key,
    parse_key,
)

pytestmark = pytest.mark.integration

SAID = "my card is 4111 1111 1111 1111, call me on 415 555 0132"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL 16 server of its own on a Unix socket, stopped and removed after the test."""
    folder = Path(tempfile.mkdtemp(prefix="transcripts-pg-"))
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR is not set (as root)
        warnings.simplefilter("ignore")
        import pgserver  # noqa: PLC0415 - a dev dependency; imported only where PostgreSQL runs

        server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_the_store_on_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert postgres_url.startswith("postgresql://")
    store = TranscriptStore(postgres_url)
    assert store.engine.dialect.name == "postgresql"
    acme_text, volt_text = new_key(), new_key()
    acme, volt = parse_key(acme_text, "acme"), parse_key(volt_text, "volt")
    try:
        for turn in range(3):
            record = {"caller": SAID if turn == 1 else f"turn {turn}", "agent": "ok"}
            store.append("acme", "CA1", turn, record, acme, now=1_000.0, retention_s=86_400)
        store.append("acme", "CA1", 1, {"caller": SAID, "agent": "again"}, acme,
                     now=1_000.0, retention_s=86_400)  # fmt: skip
        store.append("volt", "CA2", 0, {"caller": "hi"}, volt, now=1_000.0, retention_s=60)
        # a second store on the same database (another gateway replica) sees the same rows
        TranscriptStore(postgres_url).close()

        turns = store.read("acme", "CA1", acme)
        assert [t.turn_index for t in turns] == [0, 1, 2]
        assert turns[1].record == {"caller": SAID, "agent": "again"}  # rewritten, not doubled
        assert turns[1].expires_at == 1_000.0 + 86_400
        with pytest.raises(TranscriptDecryptError, match="'acme' call 'CA1' turn 0"):
            store.read("acme", "CA1", volt)
        with store.engine.connect() as db:  # what lies in the table: no caller words
            rows = db.execute(sa.select(TURNS)).all()
        dump = repr(rows)
        assert len(rows) == 4
        assert "4111" not in dump
        assert "415" not in dump
        for row in rows:
            assert b"4111" not in bytes(row.ciphertext)

        assert sorted(store.calls()) == [("acme", "CA1", 3), ("volt", "CA2", 1)]
        assert store.purge_expired(now=1_000.0 + 61) == 1  # volt's 60 s retention ran out
        assert store.calls("volt") == []

        tenants = tmp_path / "tenants.yaml"
        tenants.write_text(yaml.safe_dump({"acme": {"transcripts": {"key": acme_text}}}))
        url = ["--url", postgres_url]
        assert main(["list", *url]) == 0
        assert "acme\tCA1\t3 turns" in capsys.readouterr().out
        show = [
            "show",
            *url,
            "--call-id",
            "CA1",
            "--tenant",
            "acme",
            "--tenants-file",
            str(tenants),
        ]
        assert main(show) == 0
        shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [s["turn"] for s in shown] == [0, 1, 2]
        assert shown[1]["caller"] == SAID
        assert main(["purge", *url, "--call-id", "CA1", "--tenant", "acme"]) == 0
        assert "deleted 3 turns of call CA1" in capsys.readouterr().out
        assert store.calls() == []
    finally:
        store.close()
