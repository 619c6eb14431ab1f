"""Ingest documents: parse, chunk, embed in batches, replace a source's chunks if it changed.

Idempotent by content: the document hash (over the raw bytes and the access metadata) is stored
on every chunk; an unchanged document writes nothing; a changed one replaces its old chunks;
any write bumps the tenant's knowledge-base version and drops the tenant's cached answers.
A batch (:meth:`Ingestor.ingest_many`) does that with one write and one flush per collection,
whatever its number of documents.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.context.backends.embedder import Embedder
from trunkline.context.backends.store import AnswerCache, ChunkStore, SourceInfo
from trunkline.context.core.chunking import ChunkingPolicy, Section, chunk_sections
from trunkline.context.core.dedup import content_hash
from trunkline.context.core.filters import check_ident, encode_roles
from trunkline.context.core.types import ChunkDraft, ChunkMeta, StoredChunk
from trunkline.context.errors import ContextError, InvalidRequestError
from trunkline.context.ingest.parsers import parse
from trunkline.redaction.injection import scan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    source: str
    status: str  # "unchanged" | "created" | "replaced" | "deleted" | "absent" | "failed"
    chunks_written: int
    chunks_deleted: int
    kb_version: int
    error: ContextError | None = None
    cache_invalidated: int = 0
    chunks_unchanged: int = 0


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One result per document, in order, and the cached answers the batch invalidated."""

    results: list[IngestResult]
    cache_invalidated: int


@dataclass(frozen=True, slots=True)
class Document:
    """One document to ingest: raw ``data`` (parsed by ``kind``, or by the source's suffix), or
    pre-parsed ``sections`` under a caller-given ``digest`` (benchmarks, generated corpora)."""

    source: str
    meta: ChunkMeta
    data: bytes = b""
    kind: str | None = None
    entity_field: str = ""
    sections: tuple[Section, ...] | None = None
    digest: str = ""


@dataclass(slots=True)
class _Pending:
    index: int
    doc: Document
    digest: str
    replacing: bool
    drafts: list[ChunkDraft]


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
        doc = Document(source, meta, data=data, kind=kind, entity_field=entity_field)
        return _raise_failed((await self.ingest_many([doc])).results[0])

    async def ingest_sections(
        self, source: str, sections: Sequence[Section], meta: ChunkMeta, digest: str
    ) -> IngestResult:
        """Ingest pre-parsed sections (benchmarks, generated corpora) under a caller-given hash."""
        doc = Document(source, meta, sections=tuple(sections), digest=digest)
        return _raise_failed((await self.ingest_many([doc])).results[0])

    async def ingest_many(self, docs: Sequence[Document]) -> BatchResult:
        """Ingest a batch of one tenant's documents with one write per store collection.

        Every document is checked, hashed and parsed first (a bad one gets a ``failed`` result
        with its error; the others go on); then all new chunks are embedded together, replaced
        sources deleted in one call, the KB version bumped once, the chunks upserted in one call
        (one flush) and the tenant's cached answers dropped once.
        """
        tenants = {d.meta.tenant for d in docs}
        if len(tenants) > 1:
            raise InvalidRequestError(f"one ingest batch holds one tenant, got {sorted(tenants)}")
        results: list[IngestResult | None] = [None] * len(docs)
        pending: list[_Pending] = []
        seen: set[str] = set()
        for index, doc in enumerate(docs):
            try:
                item = await self._prepare(index, doc, seen)
            except ContextError as exc:
                results[index] = IngestResult(doc.source, "failed", 0, 0, 0, exc)
                continue
            if isinstance(item, IngestResult):
                results[index] = item
            else:
                pending.append(item)
        invalidated = 0
        if pending:
            written, invalidated = await self._write(pending)
            for item, result in zip(pending, written, strict=True):
                results[item.index] = result
        return BatchResult([r for r in results if r is not None], invalidated)

    async def delete(self, tenant: str, source: str) -> IngestResult:
        return await delete_source(self.store, self.cache, tenant, source)

    async def sources(self, tenant: str) -> list[SourceInfo]:
        check_ident("tenant", tenant)
        return await self.store.sources(tenant)

    async def _prepare(self, index: int, doc: Document, seen: set[str]) -> _Pending | IngestResult:
        self._check(doc.source, doc.meta)
        if doc.source in seen:
            raise InvalidRequestError(f"{doc.source}: given twice in one ingest")
        seen.add(doc.source)
        digest = doc.digest or doc_hash(doc.data, doc.meta, doc.entity_field)
        stored = await self.store.source_hash(doc.meta.tenant, doc.source)
        sections = (
            doc.sections
            if doc.sections is not None
            else parse(doc.source, doc.data, doc.kind, doc.entity_field)
        )
        drafts = chunk_sections(sections, self.policy)
        if stored == digest:
            info = await self.store.tenant(doc.meta.tenant)
            version = info.kb_version if info else 0
            return IngestResult(
                doc.source, "unchanged", 0, 0, version, chunks_unchanged=len(drafts)
            )
        if not drafts:
            raise InvalidRequestError(f"{doc.source}: no text found to ingest")
        return _Pending(index, doc, digest, stored is not None, drafts)

    async def _write(self, pending: Sequence[_Pending]) -> tuple[list[IngestResult], int]:
        texts = [
            f"{d.section}. {d.text}" if d.section else d.text for p in pending for d in p.drafts
        ]
        vectors = await self.embedder.embed(texts)
        tenant = pending[0].doc.meta.tenant
        replaced = [p.doc.source for p in pending if p.replacing]
        deleted = await self.store.delete_sources(tenant, replaced)
        roles = sorted({r for p in pending for r in p.doc.meta.roles})
        info = await self.store.record_change(tenant, roles)
        chunks = [
            StoredChunk(
                chunk_id=chunk_id(tenant, p.doc.source, p.digest, d.ordinal),
                text=d.text,
                source=p.doc.source,
                section=d.section,
                content_hash=content_hash(d.text),
                doc_hash=p.digest,
                entity=d.entity,
                meta=p.doc.meta,
                kb_version=info.kb_version,
            )
            for p in pending
            for d in p.drafts
        ]
        await self.store.upsert(chunks, vectors)
        for p in pending:  # prompt injection: kept, flagged (kb list), screened out of prompts
            flagged = sum(bool(scan(d.text)) for d in p.drafts)
            if flagged:
                log.warning(
                    "%s: %d chunk(s) carry instructions for the assistant (prompt injection); "
                    "they are flagged in `trunkline kb list` and screened out of prompts",
                    p.doc.source,
                    flagged,
                )
        invalidated = await self.cache.invalidate(tenant) if self.cache is not None else 0
        results = [
            IngestResult(
                p.doc.source,
                "replaced" if p.replacing else "created",
                len(p.drafts),
                deleted.get(p.doc.source, 0),
                info.kb_version,
            )
            for p in pending
        ]
        return results, invalidated

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
    invalidated = 0
    if deleted:
        version = (await store.record_change(tenant, ())).kb_version
        if cache is not None:
            invalidated = await cache.invalidate(tenant)
    status = "deleted" if deleted else "absent"
    return IngestResult(source, status, 0, deleted, version, cache_invalidated=invalidated)


def _raise_failed(result: IngestResult) -> IngestResult:
    if result.error is not None:
        raise result.error
    return result
