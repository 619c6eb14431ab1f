"""The unredacted transcript store: only for tenants whose policy allows it, encrypted at rest
with a per-tenant key, kept for the tenant's retention period, deleted by call.

Each turn is one row: tenant, call id, turn index, when it was written and when it expires, and
the turn as JSON sealed with AES-256-GCM under the tenant's key (a fresh 96-bit nonce per row;
the tenant, call id and turn index are the associated data, so a row moved to another call or
tenant does not decrypt). Keys come from a Secret (the gateway's tenants file) or the
environment, as 32 bytes in URL-safe base64; they are never logged and never stored here.

SQL through SQLAlchemy Core: SQLite by default (``sqlite:///.run/transcripts.db``), PostgreSQL
in production (``postgresql://`` is driven by psycopg 3, as the ledger's). Blocking: call it from
a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEFAULT_URL = "sqlite:///.run/transcripts.db"
KEY_BYTES = 32

_META = sa.MetaData()
TURNS = sa.Table(
    "transcript_turns",
    _META,
    sa.Column("tenant", sa.String(128), primary_key=True),
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("turn_index", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
)


class TranscriptKeyError(ValueError):
    """A tenant key that is missing or not 32 bytes of URL-safe base64 (never shows the key)."""


class TranscriptDecryptError(ValueError):
    """A row that the given key does not open (wrong key, or the row was tampered with)."""


def parse_key(text: str, tenant: str) -> bytes:
    """The 32-byte key of ``tenant`` from its URL-safe base64 text."""
    if not text:
        raise TranscriptKeyError(f"tenant {tenant!r}: no transcript key configured")
    try:
        key = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TranscriptKeyError(f"tenant {tenant!r}: transcript key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise TranscriptKeyError(
            f"tenant {tenant!r}: transcript key must be {KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def new_key() -> str:
    """A fresh key as URL-safe base64 text (for a tenant's Secret)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True, slots=True)
class StoredTurn:
    tenant: str
    call_id: str
    turn_index: int
    created_at: float
    expires_at: float
    record: dict[str, Any]


def _aad(tenant: str, call_id: str, turn_index: int) -> bytes:
    return f"{tenant}\x00{call_id}\x00{turn_index}".encode()


class TranscriptStore:
    """Encrypted turns in SQL; every method is blocking (run it in a thread)."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            folder = os.path.dirname(url.removeprefix("sqlite:///"))
            if folder:
                os.makedirs(folder, exist_ok=True)
        if url.startswith("postgresql://"):  # psycopg 3, not SQLAlchemy's default psycopg2
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        pre_ping = not url.startswith("sqlite")  # a server restart: a fresh connection
        self.engine = sa.create_engine(url, pool_pre_ping=pre_ping)
        _META.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def append(
        self,
        tenant: str,
        call_id: str,
        turn_index: int,
        record: Mapping[str, Any],
        key: bytes,
        *,
        now: float,
        retention_s: float,
    ) -> None:
        """Seal and store one turn (a second write of the same turn replaces it)."""
        nonce = os.urandom(12)
        plain = json.dumps(dict(record), ensure_ascii=False, separators=(",", ":")).encode()
        sealed = AESGCM(key).encrypt(nonce, plain, _aad(tenant, call_id, turn_index))
        row = {
            "tenant": tenant,
            "call_id": call_id,
            "turn_index": turn_index,
            "created_at": now,
            "expires_at": now + retention_s,
            "nonce": nonce,
            "ciphertext": sealed,
        }
        key_match = (
            (TURNS.c.tenant == tenant)
            & (TURNS.c.call_id == call_id)
            & (TURNS.c.turn_index == turn_index)
        )
        with self.engine.begin() as db:
            db.execute(sa.delete(TURNS).where(key_match))
            db.execute(sa.insert(TURNS).values(**row))

    def read(self, tenant: str, call_id: str, key: bytes) -> list[StoredTurn]:
        """The call's turns in order, opened with ``key``."""
        query = (
            sa.select(TURNS)
            .where((TURNS.c.tenant == tenant) & (TURNS.c.call_id == call_id))
            .order_by(TURNS.c.turn_index)
        )
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        turns = []
        for row in rows:
            try:
                plain = AESGCM(key).decrypt(
                    row["nonce"], row["ciphertext"], _aad(tenant, call_id, row["turn_index"])
                )
            except InvalidTag as exc:
                raise TranscriptDecryptError(
                    f"tenant {tenant!r} call {call_id!r} turn {row['turn_index']}: the key does "
                    "not open it"
                ) from exc
            turns.append(
                StoredTurn(
                    tenant,
                    call_id,
                    row["turn_index"],
                    row["created_at"],
                    row["expires_at"],
                    json.loads(plain),
                )
            )
        return turns

    def ciphertexts(self, tenant: str, call_id: str) -> list[bytes]:
        """The stored bytes of a call's turns, as they lie on disk (tests, audits)."""
        query = sa.select(TURNS.c.ciphertext).where(
            (TURNS.c.tenant == tenant) & (TURNS.c.call_id == call_id)
        )
        with self.engine.connect() as db:
            return [bytes(value) for value in db.execute(query).scalars()]

    def calls(self, tenant: str | None = None) -> list[tuple[str, str, int]]:
        """(tenant, call id, turns) of every stored call, optionally of one tenant."""
        query = sa.select(TURNS.c.tenant, TURNS.c.call_id, sa.func.count()).group_by(
            TURNS.c.tenant, TURNS.c.call_id
        )
        if tenant is not None:
            query = query.where(TURNS.c.tenant == tenant)
        with self.engine.connect() as db:
            return [(t, c, int(n)) for t, c, n in db.execute(query.order_by(TURNS.c.call_id))]

    def purge_call(self, call_id: str, tenant: str | None = None) -> int:
        """Delete every stored turn of ``call_id`` (of ``tenant`` if given); rows deleted."""
        where = TURNS.c.call_id == call_id
        if tenant is not None:
            where = where & (TURNS.c.tenant == tenant)
        with self.engine.begin() as db:
            return int(db.execute(sa.delete(TURNS).where(where)).rowcount)

    def purge_expired(self, now: float) -> int:
        """Delete every turn past its tenant's retention period; rows deleted."""
        with self.engine.begin() as db:
            return int(db.execute(sa.delete(TURNS).where(TURNS.c.expires_at <= now)).rowcount)
