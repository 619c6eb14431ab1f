"""Fakes implementing the real ABCs, for tests of this service and its callers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from trunkline.context.backends.embedder import DIM, Embedder, Vectors
from trunkline.context.backends.ranker import Ranker
from trunkline.context.backends.store import ChunkStore, SourceInfo, TenantInfo
from trunkline.context.core.filters import access_filter, visible
from trunkline.context.core.types import Caller, Hit, StoredChunk
from trunkline.redaction.injection import scan


class HashEmbedder(Embedder):
    """Deterministic bag-of-words vectors: texts sharing words are close."""

    async def _impl(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        result: Vectors = out / norms
        return result


class MemoryStore(ChunkStore):
    """In-memory store; ``search`` parses nothing: it requires the expression the core built."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, tuple[StoredChunk, Vectors]] = {}
        self.tenants: dict[str, TenantInfo] = {}
        self.expressions: list[str] = []
        self.callers: dict[str, Caller] = {}

    def allow(self, caller: Caller) -> None:
        self.callers[access_filter(caller)] = caller

    async def _search_impl(self, vector: Vectors, expr: str, limit: int, tenant: str) -> list[Hit]:
        self.expressions.append(expr)
        caller = self.callers[expr]
        found = [
            Hit(chunk, float(vec @ vector))
            for chunk, vec in self.rows.values()
            if chunk.meta.tenant == tenant and visible(chunk.meta, caller)
        ]
        return sorted(found, key=lambda h: -h.similarity)[:limit]

    async def _upsert_impl(self, chunks: Sequence[StoredChunk], vectors: Vectors) -> int:
        for chunk, vec in zip(chunks, vectors, strict=True):
            self.rows[chunk.chunk_id] = (chunk, vec)
        return len(chunks)

    async def _delete_sources_impl(self, tenant: str, sources: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(sources, 0)
        for key, (chunk, _) in list(self.rows.items()):
            if chunk.meta.tenant == tenant and chunk.source in counts:
                counts[chunk.source] += 1
                del self.rows[key]
        return counts

    async def _sources_impl(self, tenant: str) -> list[SourceInfo]:
        out: dict[str, SourceInfo] = {}
        for chunk, _ in self.rows.values():
            if chunk.meta.tenant == tenant:
                old = out.get(chunk.source)
                out[chunk.source] = SourceInfo(
                    chunk.source,
                    chunk.doc_hash,
                    (old.chunks if old else 0) + 1,
                    chunk.kb_version,
                    (old.flagged if old else 0) + bool(scan(chunk.text)),
                )
        return list(out.values())

    async def _source_hash_impl(self, tenant: str, source: str) -> str | None:
        for chunk, _ in self.rows.values():
            if chunk.meta.tenant == tenant and chunk.source == source:
                return chunk.doc_hash
        return None

    async def _tenant_impl(self, tenant: str) -> TenantInfo | None:
        return self.tenants.get(tenant)

    async def _record_change_impl(self, tenant: str, roles: Sequence[str]) -> TenantInfo:
        old = self.tenants.get(tenant)
        info = TenantInfo(
            tenant,
            frozenset(roles) | (old.roles if old else frozenset()),
            (old.kb_version if old else 0) + 1,
        )
        self.tenants[tenant] = info
        return info


class FixedRanker(Ranker):
    name = "fixed"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.calls = 0

    async def _impl(self, query: str, hits: Sequence[Hit]) -> list[float]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("scoring endpoint down")
        return [float(len(h.chunk.text)) for h in hits]  # longest first
