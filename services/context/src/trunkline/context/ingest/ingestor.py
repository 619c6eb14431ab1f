"""Ingest one document: parse, chunk, embed in batches, replace the source's chunks if changed.

Idempotent by content: the document hash (over the raw bytes and the access metadata) is stored
on every chunk; an unchanged document writes nothing; a changed one replaces its old chunks;
any write bumps the tenant's knowledge-base version and drops the tenant's cached answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.context.backends.embedder import Embedder
from trunkline.context.backends.store import AnswerCache, ChunkStore, SourceInfo
from trunkline.context.core.chunking import ChunkingPolicy, Section, chunk_sections
from trunkline.context.core.dedup import content_hash
from trunkline.context.core.filters import check_ident, encode_roles
from trunkline.context.core.types import ChunkMeta, StoredChunk
from trunkline.context.errors import InvalidRequestError
from trunkline.context.ingest.parsers import parse


@dataclass(frozen=True, slots=True)
class IngestResult:
    source: str
    status: str  # "unchanged" | "created" | "replaced"
    chunks_written: int
    chunks_deleted: int
    kb_version: int


def doc_hash(data: bytes, meta: ChunkMeta, entity_field: str) -> str:
    h = hashlib.sha256(data)
    h.update(
        f"\0{encode_roles(meta.roles)}\0{meta.valid_from}\0{meta.valid_to}\0{entity_field}".encode()
    )
    return h.hexdigest()[:32]


def chunk_id(tenant: str, source: str, digest: str, ordinal: int) -> str:
    return hashlib.sha256(f"{tenant}\0{source}\0{digest}\0{ordinal}".encode()).hexdigest()[:32]


class Ingestor:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        cache: AnswerCache | None = None,
        policy: ChunkingPolicy | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.cache = cache
        self.policy = policy or ChunkingPolicy()

    async def ingest(
        self,
        source: str,
        data: bytes,
        meta: ChunkMeta,
        kind: str | None = None,
        entity_field: str = "",
    ) -> IngestResult:
        """Ingest ``data`` as ``source`` of ``meta.tenant``; see the module doc for idempotence."""
        self._check(source, meta)
        digest = doc_hash(data, meta, entity_field)
        stored = await self.store.source_hash(meta.tenant, source)
        if stored == digest:
            info = await self.store.tenant(meta.tenant)
            return IngestResult(source, "unchanged", 0, 0, info.kb_version if info else 0)
        sections = parse(source, data, kind, entity_field)
        return await self._write(source, sections, meta, digest, replacing=stored is not None)

    async def ingest_sections(
        self, source: str, sections: Sequence[Section], meta: ChunkMeta, digest: str
    ) -> IngestResult:
        """Ingest pre-parsed sections (benchmarks, generated corpora) under a caller-given hash."""
        self._check(source, meta)
        stored = await self.store.source_hash(meta.tenant, source)
        if stored == digest:
            info = await self.store.tenant(meta.tenant)
            return IngestResult(source, "unchanged", 0, 0, info.kb_version if info else 0)
        return await self._write(source, sections, meta, digest, replacing=stored is not None)

    async def delete(self, tenant: str, source: str) -> IngestResult:
        return await delete_source(self.store, self.cache, tenant, source)

    async def sources(self, tenant: str) -> list[SourceInfo]:
        check_ident("tenant", tenant)
        return await self.store.sources(tenant)

    async def _write(
        self,
        source: str,
        sections: Sequence[Section],
        meta: ChunkMeta,
        digest: str,
        replacing: bool,
    ) -> IngestResult:
        drafts = chunk_sections(sections, self.policy)
        if not drafts:
            raise InvalidRequestError(f"{source}: no text found to ingest")
        texts = [f"{d.section}. {d.text}" if d.section else d.text for d in drafts]
        vectors = await self.embedder.embed(texts)
        deleted = await self.store.delete_source(meta.tenant, source) if replacing else 0
        info = await self.store.record_change(meta.tenant, meta.roles)
        chunks = [
            StoredChunk(
                chunk_id=chunk_id(meta.tenant, source, digest, d.ordinal),
                text=d.text,
                source=source,
                section=d.section,
                content_hash=content_hash(d.text),
                doc_hash=digest,
                entity=d.entity,
                meta=meta,
                kb_version=info.kb_version,
            )
            for d in drafts
        ]
        written = await self.store.upsert(chunks, vectors)
        if self.cache is not None:
            await self.cache.invalidate(meta.tenant)
        return IngestResult(
            source, "replaced" if replacing else "created", written, deleted, info.kb_version
        )

    @staticmethod
    def _check(source: str, meta: ChunkMeta) -> None:
        try:
            check_ident("tenant", meta.tenant)
            encode_roles(meta.roles)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        if not source or len(source) > 500:
            raise InvalidRequestError("source must be 1..500 characters")
        if meta.valid_from >= meta.valid_to:
            raise InvalidRequestError("valid_from must be before valid_to")


async def delete_source(
    store: ChunkStore, cache: AnswerCache | None, tenant: str, source: str
) -> IngestResult:
    """Delete a source's chunks; a deletion bumps the KB version and drops cached answers."""
    try:
        check_ident("tenant", tenant)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    deleted = await store.delete_source(tenant, source)
    info = await store.tenant(tenant)
    version = info.kb_version if info else 0
    if deleted:
        version = (await store.record_change(tenant, ())).kb_version
        if cache is not None:
            await cache.invalidate(tenant)
    return IngestResult(source, "deleted" if deleted else "absent", 0, deleted, version)
