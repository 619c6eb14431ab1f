"""The labelled evaluation set (``tests/data/context``): loading, ingesting, scoring.

Shared by the integration tests and ``benchmarks/context`` so both measure the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trunkline.context.core.types import FOREVER, Caller, ChunkMeta, ContextItem
from trunkline.context.ingest.ingestor import Ingestor, IngestResult


@dataclass(frozen=True, slots=True)
class Question:
    tenant: str
    role: str
    query: str
    now: int
    expect_source: str
    expect_contains: str
    forbid: tuple[str, ...]

    @property
    def caller(self) -> Caller:
        return Caller(self.tenant, self.role, self.now)

    def matches(self, item: ContextItem) -> bool:
        return item.source.endswith(self.expect_source) and self.expect_contains in item.text


@dataclass(frozen=True, slots=True)
class EvalSet:
    root: Path
    manifest: dict[str, Any]
    questions: tuple[Question, ...]
    paraphrases: dict[str, Any]
    out_of_domain: dict[str, Any]

    @property
    def default_now(self) -> int:
        return int(self.manifest["default_now"])


def load(root: Path) -> EvalSet:
    manifest = json.loads((root / "manifest.json").read_text())
    now = int(manifest["default_now"])
    questions = tuple(
        Question(
            tenant=q["tenant"],
            role=q["role"],
            query=q["query"],
            now=int(q.get("now", now)),
            expect_source=q.get("expect", {}).get("source", ""),
            expect_contains=q.get("expect", {}).get("contains", ""),
            forbid=tuple(q.get("forbid", ())),
        )
        for q in json.loads((root / "questions.json").read_text())
    )
    return EvalSet(
        root=root,
        manifest=manifest,
        questions=questions,
        paraphrases=json.loads((root / "paraphrases.json").read_text()),
        out_of_domain=json.loads((root / "out_of_domain.json").read_text()),
    )


async def ingest_all(evalset: EvalSet, ingestor: Ingestor) -> list[IngestResult]:
    results = []
    for doc in evalset.manifest["documents"]:
        meta = ChunkMeta(
            tenant=doc["tenant"],
            roles=tuple(doc["roles"]),
            valid_from=int(doc.get("valid_from", 0)),
            valid_to=int(doc.get("valid_to", FOREVER)),
        )
        data = (evalset.root / doc["path"]).read_bytes()
        source = doc.get("source", doc["path"])
        results.append(
            await ingestor.ingest(source, data, meta, entity_field=doc.get("entity_field", ""))
        )
    return results


def reciprocal_rank(question: Question, items: Sequence[ContextItem], k: int) -> float:
    """1/rank of the first item that is the expected chunk within the top ``k``, else 0."""
    for rank, item in enumerate(items[:k], start=1):
        if question.matches(item):
            return 1.0 / rank
    return 0.0
