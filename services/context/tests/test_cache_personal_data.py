"""The semantic cache keeps no caller's personal data (issue 13): a question that holds a card,
account or phone number is never stored (it is that caller's, never another's, and the cache
would hold it at rest in Milvus unredacted); the same question without it is. Milvus Lite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.core.cache_policy import AnswerFacts
from trunkline.context.fakes import HashEmbedder
from trunkline.context.resolver import Resolver

pytestmark = pytest.mark.integration

NOW = 1_700_000_000


@pytest.fixture
def resolver(tmp_path: Path) -> Iterator[tuple[Resolver, Path]]:
    path = tmp_path / "kb.db"
    db = MilvusDatabase(str(path))
    try:
        yield Resolver(HashEmbedder(), MilvusChunkStore(db), MilvusAnswerCache(db)), path
    finally:
        db.close()


@pytest.mark.parametrize(
    "question",
    [
        "Can I pay my bill with card 4111 1111 1111 1111?",
        "My account number is 44172938, is my bill paid?",
        "Can you call me back on 415 555 0132 about my bill?",
    ],
)
async def test_a_question_with_personal_data_is_never_stored(
    resolver: tuple[Resolver, Path], question: str
) -> None:
    kb, path = resolver
    info = await kb.store.record_change("acme", ["caller"])
    facts = AnswerFacts(heard="You can pay by card or bank transfer.", grounded=True)

    async def store(query: str) -> bool:
        stored = await kb.store_answer(
            query, facts, ["billing.md"], tenant="acme", role="caller", agent="bot",
            kb_version=info.kb_version, now=NOW,
        )  # fmt: skip
        if not stored.stored:
            assert stored.reason.startswith("personal_data"), stored.reason
        return stored.stored

    assert not await store(question)
    assert await store("Can I pay my bill by card?")  # the same kind of question, no data
    at_rest = b"".join(p.read_bytes() for p in path.parent.rglob("*") if p.is_file())
    assert b"4111" not in at_rest
    assert b"44172938" not in at_rest
    assert b"0132" not in at_rest
