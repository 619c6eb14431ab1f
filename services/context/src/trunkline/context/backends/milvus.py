"""Milvus backends: chunk store, tenant registry and semantic cache in one database.

``uri`` is a Milvus Lite file path (embedded default) or a Milvus server URL (production): the
same code. Tenants are laid out per :mod:`~trunkline.context.backends.tenant_layout`: a partition
per tenant selected in each request (default), or tenant as the partition key. Either way every
filter is a search expression that also names the tenant.
Writes are flushed before they return (unflushed search is ~30x slower in Milvus Lite).
Calls run on one worker thread per database handle: the client is not shared across threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient

from trunkline.context.backends.embedder import DIM, Vectors
from trunkline.context.backends.guarded import CallPolicy
from trunkline.context.backends.store import AnswerCache, ChunkStore, SourceInfo, TenantInfo
from trunkline.context.backends.tenant_layout import TenantLayout, tenant_partition
from trunkline.context.core.cache_policy import CacheScope, entry_id
from trunkline.context.core.filters import check_ident, decode_roles, encode_roles
from trunkline.context.core.types import (
    CachedAnswer,
    CacheEntry,
    ChunkMeta,
    EntrySelector,
    Hit,
    StoredChunk,
)
from trunkline.redaction.injection import scan

log = logging.getLogger(__name__)
T = TypeVar("T")
IndexType = Literal["FLAT", "HNSW"]

CHUNKS = "trunkline_chunks"
TENANTS = "trunkline_tenants"
ANSWERS = "trunkline_answers"
_CHUNK_FIELDS = [
    "chunk_id", "tenant", "source", "section", "text", "content_hash", "doc_hash", "entity",
    "roles", "valid_from", "valid_to", "kb_version",
]  # fmt: skip


def _q(value: str) -> str:
    """A string literal for a filter expression (JSON escaping covers quotes and backslashes)."""
    return json.dumps(value)


class LayoutMismatchError(ValueError):
    """The database was created with another tenant layout than the one asked for."""


class MilvusDatabase:
    """One Milvus client (Lite file or server) and the worker thread all its calls run on.

    ``layout`` applies when the collections are created; an existing database keeps its own
    (``None``: use it, whatever it is; a different explicit layout raises
    :class:`LayoutMismatchError` rather than reading an empty layout).
    """

    def __init__(
        self,
        uri: str,
        token: str = "",
        index_type: IndexType = "FLAT",
        tenant_cache_s: float = 5.0,
        layout: TenantLayout | None = None,
    ) -> None:
        self.client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        self.index_type = index_type
        self.tenant_cache_s = tenant_cache_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="milvus")
        self._known_partitions: set[tuple[str, str]] = set()
        try:
            self.layout: TenantLayout = self._choose_layout(layout)
            self._ensure_collections()
        except BaseException:
            self.close()
            raise

    def warm(self) -> None:
        """One search per searched collection, so the first real request pays no cold start."""
        probe = [[1.0] + [0.0] * (DIM - 1)]
        for name in (CHUNKS, ANSWERS):
            self.client.search(name, data=probe, filter='tenant == ""', limit=1)

    def read_partitions(self, collection: str, tenant: str) -> list[str] | None:
        """``partition_names`` for a read of ``tenant``'s rows; None when it has none here.

        ``[]`` (the whole collection) in the partition-key layout, where the server prunes
        by the expression. Runs on the worker thread.
        """
        if self.layout == "partition_key":
            return []
        name = tenant_partition(tenant)
        if (collection, name) not in self._known_partitions:
            if not self.client.has_partition(collection, name):
                return None  # not cached: another process may create it later
            self._known_partitions.add((collection, name))
        return [name]

    def write_partition(self, collection: str, tenant: str) -> str:
        """The ``partition_name`` a write of ``tenant``'s rows goes to, created if missing."""
        if self.layout == "partition_key":
            return ""
        name = tenant_partition(tenant)
        if (collection, name) not in self._known_partitions:
            if not self.client.has_partition(collection, name):
                self.client.create_partition(collection, name)
            self._known_partitions.add((collection, name))
        return name

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    def _index(self, field: str = "vector") -> Any:
        index = self.client.prepare_index_params()
        if self.index_type == "HNSW":
            index.add_index(
                field_name=field,
                index_type="HNSW",
                metric_type="COSINE",
                params={"M": 16, "efConstruction": 128},
            )
        else:
            index.add_index(field_name=field, index_type="FLAT", metric_type="COSINE")
        return index

    def _has_field(self, collection: str, field: str) -> bool:
        fields = self.client.describe_collection(collection)["fields"]
        return any(f["name"] == field for f in fields)

    def _existing_layout(self, name: str) -> TenantLayout | None:
        if not self.client.has_collection(name):
            return None
        fields = self.client.describe_collection(name)["fields"]
        keyed = any(f["name"] == "tenant" and f.get("is_partition_key") for f in fields)
        return "partition_key" if keyed else "partition"

    def _choose_layout(self, wanted: TenantLayout | None) -> TenantLayout:
        found = {n: self._existing_layout(n) for n in (CHUNKS, ANSWERS)}
        existing = {layout for layout in found.values() if layout is not None}
        if len(existing) > 1:
            raise LayoutMismatchError(f"collections disagree on the tenant layout: {found}")
        if existing:
            (have,) = existing
            if wanted is not None and wanted != have:
                raise LayoutMismatchError(
                    f"the database was created with tenant layout {have!r}, not {wanted!r}:"
                    f" set CONTEXT_TENANT_LAYOUT={have} or ingest into a new database"
                )
            return have
        return wanted or "partition"

    def _ensure_collections(self) -> None:
        c = self.client
        keyed = self.layout == "partition_key"
        if not c.has_collection(CHUNKS):
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=64)
            s.add_field("tenant", DataType.VARCHAR, max_length=64, is_partition_key=keyed)
            s.add_field("source", DataType.VARCHAR, max_length=512)
            s.add_field("section", DataType.VARCHAR, max_length=512)
            s.add_field("text", DataType.VARCHAR, max_length=16384)
            s.add_field("content_hash", DataType.VARCHAR, max_length=64)
            s.add_field("doc_hash", DataType.VARCHAR, max_length=64)
            s.add_field("entity", DataType.VARCHAR, max_length=128)
            s.add_field("roles", DataType.VARCHAR, max_length=1024)
            s.add_field("valid_from", DataType.INT64)
            s.add_field("valid_to", DataType.INT64)
            s.add_field("kb_version", DataType.INT64)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            c.create_collection(CHUNKS, schema=s, index_params=self._index())
        if not c.has_collection(TENANTS):
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("tenant", DataType.VARCHAR, is_primary=True, max_length=64)
            s.add_field("roles", DataType.VARCHAR, max_length=4096)
            s.add_field("kb_version", DataType.INT64)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one vector field
            index = c.prepare_index_params()
            index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
            c.create_collection(TENANTS, schema=s, index_params=index)
        if c.has_collection(ANSWERS) and not self._has_field(ANSWERS, "role"):
            # Answers stored before entries were role-scoped: a cache, dropped rather than
            # served to every role.
            log.warning("dropping %s: its entries are not scoped by caller role", ANSWERS)
            c.drop_collection(ANSWERS)
        if not c.has_collection(ANSWERS):
            s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("answer_id", DataType.VARCHAR, is_primary=True, max_length=64)
            s.add_field("tenant", DataType.VARCHAR, max_length=64, is_partition_key=keyed)
            s.add_field("agent", DataType.VARCHAR, max_length=64)
            s.add_field("role", DataType.VARCHAR, max_length=64)
            s.add_field("kb_version", DataType.INT64)
            s.add_field("stored_at", DataType.INT64)
            s.add_field("expires_at", DataType.INT64)
            s.add_field("query", DataType.VARCHAR, max_length=4096)
            s.add_field("answer", DataType.VARCHAR, max_length=16384)
            s.add_field("citations", DataType.VARCHAR, max_length=8192)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
            index = c.prepare_index_params()
            index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
            c.create_collection(ANSWERS, schema=s, index_params=index)
        for name in (CHUNKS, TENANTS, ANSWERS):
            c.load_collection(name)


def _chunk_row(chunk: StoredChunk, vector: Vectors) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "tenant": chunk.meta.tenant,
        "source": chunk.source[:512],
        "section": chunk.section[:500],
        "text": chunk.text,
        "content_hash": chunk.content_hash,
        "doc_hash": chunk.doc_hash,
        "entity": chunk.entity[:128],
        "roles": encode_roles(chunk.meta.roles),
        "valid_from": chunk.meta.valid_from,
        "valid_to": chunk.meta.valid_to,
        "kb_version": chunk.kb_version,
        "vector": vector.tolist(),
    }


def _chunk_from(entity: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        chunk_id=entity["chunk_id"],
        text=entity["text"],
        source=entity["source"],
        section=entity["section"],
        content_hash=entity["content_hash"],
        doc_hash=entity["doc_hash"],
        entity=entity["entity"],
        meta=ChunkMeta(
            tenant=entity["tenant"],
            roles=decode_roles(entity["roles"]),
            valid_from=int(entity["valid_from"]),
            valid_to=int(entity["valid_to"]),
        ),
        kb_version=int(entity["kb_version"]),
    )


class MilvusChunkStore(ChunkStore):
    def __init__(self, db: MilvusDatabase, policy: CallPolicy | None = None) -> None:
        super().__init__(policy)
        self.db = db
        self._tenants: dict[str, tuple[float, TenantInfo]] = {}

    async def _search_impl(self, vector: Vectors, expr: str, limit: int, tenant: str) -> list[Hit]:
        # The scope tenant joins the caller's expression in both layouts: a mismatch finds nothing.
        scoped = f"tenant == {_q(check_ident('tenant', tenant))} and ({expr})"

        def call() -> list[Hit]:
            partitions = self.db.read_partitions(CHUNKS, tenant)
            if partitions is None:
                return []
            result = self.db.client.search(
                CHUNKS,
                data=[vector.tolist()],
                filter=scoped,
                limit=limit,
                output_fields=_CHUNK_FIELDS,
                partition_names=partitions,
                search_params={"metric_type": "COSINE", "params": {"ef": max(64, limit * 2)}},
            )
            hits = result[0] if result else []
            return [
                Hit(chunk=_chunk_from(h["entity"]), similarity=float(h["distance"])) for h in hits
            ]

        return await self.db.run(call)

    async def _upsert_impl(self, chunks: Sequence[StoredChunk], vectors: Vectors) -> int:
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        for chunk, vector in zip(chunks, vectors, strict=True):
            by_tenant.setdefault(chunk.meta.tenant, []).append(_chunk_row(chunk, vector))

        def call() -> int:
            for tenant, rows in by_tenant.items():
                partition = self.db.write_partition(CHUNKS, tenant)
                for start in range(0, len(rows), 1000):
                    self.db.client.upsert(
                        CHUNKS, rows[start : start + 1000], partition_name=partition
                    )
            self.db.client.flush(CHUNKS)
            return len(chunks)

        return await self.db.run(call)

    async def _delete_sources_impl(self, tenant: str, sources: Sequence[str]) -> dict[str, int]:
        where = f"tenant == {_q(check_ident('tenant', tenant))}"

        def call() -> dict[str, int]:
            partitions = self.db.read_partitions(CHUNKS, tenant)
            if partitions is None:
                return dict.fromkeys(sources, 0)
            counts = {
                source: _delete_count(
                    self.db.client.delete(
                        CHUNKS,
                        filter=f"{where} and source == {_q(source)}",
                        partition_name=partitions[0] if partitions else None,
                    )
                )
                for source in sources
            }
            self.db.client.flush(CHUNKS)
            return counts

        return await self.db.run(call)

    async def _sources_impl(self, tenant: str) -> list[SourceInfo]:
        expr = f"tenant == {_q(check_ident('tenant', tenant))}"

        def call() -> list[SourceInfo]:
            found: dict[str, list[Any]] = {}
            partitions = self.db.read_partitions(CHUNKS, tenant)
            if partitions is None:
                return []
            iterator = self.db.client.query_iterator(
                CHUNKS,
                filter=expr,
                output_fields=["source", "doc_hash", "kb_version", "text"],
                batch_size=1000,
                partition_names=partitions,
            )
            try:
                while batch := iterator.next():
                    for row in batch:
                        entry = found.setdefault(row["source"], [row["doc_hash"], 0, 0, 0])
                        entry[1] += 1
                        entry[2] = max(entry[2], int(row["kb_version"]))
                        entry[3] += bool(scan(row["text"]))  # prompt-injection screen
            finally:
                iterator.close()
            return [SourceInfo(s, e[0], e[1], e[2], e[3]) for s, e in sorted(found.items())]

        return await self.db.run(call)

    async def _source_hash_impl(self, tenant: str, source: str) -> str | None:
        expr = f"tenant == {_q(check_ident('tenant', tenant))} and source == {_q(source)}"

        def call() -> str | None:
            partitions = self.db.read_partitions(CHUNKS, tenant)
            if partitions is None:
                return None
            rows = self.db.client.query(
                CHUNKS,
                filter=expr,
                output_fields=["doc_hash"],
                limit=1,
                partition_names=partitions,
            )
            return str(rows[0]["doc_hash"]) if rows else None

        return await self.db.run(call)

    async def _tenant_impl(self, tenant: str) -> TenantInfo | None:
        cached = self._tenants.get(tenant)
        if cached and time.monotonic() - cached[0] < self.db.tenant_cache_s:
            return cached[1]
        info = await self.db.run(lambda: self._read_tenant(tenant))
        if info is not None:
            self._tenants[tenant] = (time.monotonic(), info)
        return info

    def _read_tenant(self, tenant: str) -> TenantInfo | None:
        rows = self.db.client.get(TENANTS, ids=[tenant], output_fields=["roles", "kb_version"])
        if not rows:
            return None
        row = rows[0]
        return TenantInfo(tenant, frozenset(decode_roles(row["roles"])), int(row["kb_version"]))

    async def _record_change_impl(self, tenant: str, roles: Sequence[str]) -> TenantInfo:
        check_ident("tenant", tenant)

        def call() -> TenantInfo:
            old = self._read_tenant(tenant)
            merged = set(roles) | (set(old.roles) if old else set())
            info = TenantInfo(tenant, frozenset(merged), (old.kb_version if old else 0) + 1)
            row = {
                "tenant": tenant,
                "roles": encode_roles(tuple(sorted(merged))) if merged else "",
                "kb_version": info.kb_version,
                "vector": [0.0, 0.0],
            }
            self.db.client.upsert(TENANTS, [row])
            self.db.client.flush(TENANTS)
            return info

        info = await self.db.run(call)
        self._tenants[tenant] = (time.monotonic(), info)
        return info


def _delete_count(result: Any) -> int:
    if isinstance(result, dict):
        return int(result.get("delete_count", 0))
    if isinstance(result, list):
        return len(result)
    return int(getattr(result, "delete_count", 0) or 0)


def _scope_expr(scope: CacheScope) -> str:
    """The filter selecting exactly ``scope``'s stored answers."""
    return (
        f"tenant == {_q(check_ident('tenant', scope.tenant))}"
        f" and agent == {_q(check_ident('agent', scope.agent))}"
        f" and role == {_q(check_ident('role', scope.role))}"
        f" and kb_version == {int(scope.kb_version)}"
    )


_ENTRY_FIELDS = [
    "answer_id", "agent", "role", "kb_version", "query", "answer", "citations", "stored_at",
    "expires_at",
]  # fmt: skip


def _entry_from(row: dict[str, Any]) -> CacheEntry:
    return CacheEntry(
        entry_id=str(row["answer_id"]),
        agent=str(row["agent"]),
        role=str(row["role"]),
        kb_version=int(row["kb_version"]),
        query=str(row["query"]),
        answer=str(row["answer"]),
        citations=tuple(json.loads(row["citations"])),
        stored_at=int(row["stored_at"]),
        expires_at=int(row["expires_at"]),
    )


class MilvusAnswerCache(AnswerCache):
    def __init__(self, db: MilvusDatabase, policy: CallPolicy | None = None) -> None:
        super().__init__(policy)
        self.db = db

    async def _candidates_impl(
        self, scope: CacheScope, vector: Vectors, now: int, floor: float, limit: int
    ) -> list[CachedAnswer]:
        expr = f"{_scope_expr(scope)} and expires_at > {int(now)}"

        def call() -> list[CachedAnswer]:
            partitions = self.db.read_partitions(ANSWERS, scope.tenant)
            if partitions is None:
                return []
            result = self.db.client.search(
                ANSWERS,
                data=[vector.tolist()],
                filter=expr,
                limit=limit,
                output_fields=["answer_id", "query", "answer", "citations"],
                partition_names=partitions,
                search_params={"metric_type": "COSINE"},
            )
            found = []
            for best in result[0] if result else []:
                similarity = float(best["distance"])
                if similarity < floor:
                    continue
                entity = best["entity"]
                found.append(
                    CachedAnswer(
                        query=entity["query"],
                        answer=entity["answer"],
                        citations=tuple(json.loads(entity["citations"])),
                        similarity=similarity,
                        entry_id=str(entity["answer_id"]),
                    )
                )
            return found

        return await self.db.run(call)

    async def _scope_entries_impl(self, scope: CacheScope, limit: int) -> list[CacheEntry]:
        expr = _scope_expr(scope)

        def call() -> list[CacheEntry]:
            partitions = self.db.read_partitions(ANSWERS, scope.tenant)
            if partitions is None:
                return []
            rows = self.db.client.query(
                ANSWERS,
                filter=expr,
                output_fields=_ENTRY_FIELDS,
                limit=limit,
                partition_names=partitions,
            )
            return [_entry_from(row) for row in rows]

        return await self.db.run(call)

    async def _vectors_impl(self, tenant: str, entry_ids: Sequence[str]) -> dict[str, Vectors]:
        check_ident("tenant", tenant)

        def call() -> dict[str, Vectors]:
            partitions = self.db.read_partitions(ANSWERS, tenant)
            if partitions is None:
                return {}
            found: dict[str, Vectors] = {}
            ids = list(entry_ids)
            for start in range(0, len(ids), 1000):
                rows = self.db.client.get(
                    ANSWERS,
                    ids=ids[start : start + 1000],
                    output_fields=["answer_id", "tenant", "vector"],
                    partition_names=partitions,
                )
                for row in rows:
                    if row["tenant"] == tenant:
                        found[str(row["answer_id"])] = np.asarray(row["vector"], dtype=np.float32)
            return found

        return await self.db.run(call)

    async def _store_impl(
        self,
        scope: CacheScope,
        *,
        query: str,
        vector: Vectors,
        answer: str,
        citations: Sequence[str],
        stored_at: int,
        expires_at: int,
    ) -> None:
        row = {
            "answer_id": entry_id(scope, query),
            "tenant": check_ident("tenant", scope.tenant),
            "agent": check_ident("agent", scope.agent),
            "role": check_ident("role", scope.role),
            "kb_version": int(scope.kb_version),
            "stored_at": int(stored_at),
            "expires_at": int(expires_at),
            "query": query[:4000],
            "answer": answer[:16000],
            "citations": json.dumps(list(citations))[:8000],
            "vector": vector.tolist(),
        }

        def call() -> None:
            partition = self.db.write_partition(ANSWERS, scope.tenant)
            self.db.client.upsert(ANSWERS, [row], partition_name=partition)
            self.db.client.flush(ANSWERS)

        await self.db.run(call)

    async def _invalidate_impl(self, tenant: str) -> int:
        expr = f"tenant == {_q(check_ident('tenant', tenant))}"

        def call() -> int:
            partitions = self.db.read_partitions(ANSWERS, tenant)
            if partitions is None:
                return 0
            result = self.db.client.delete(
                ANSWERS, filter=expr, partition_name=partitions[0] if partitions else None
            )
            self.db.client.flush(ANSWERS)
            return _delete_count(result)

        return await self.db.run(call)

    async def _entries_impl(self, tenant: str, selector: EntrySelector) -> list[CacheEntry]:
        expr = f"tenant == {_q(check_ident('tenant', tenant))}"
        if selector.role:
            expr += f" and role == {_q(check_ident('role', selector.role))}"
        if selector.entry_ids:
            expr += f" and answer_id in {json.dumps(list(selector.entry_ids))}"

        def call() -> list[CacheEntry]:
            partitions = self.db.read_partitions(ANSWERS, tenant)
            if partitions is None:
                return []
            iterator = self.db.client.query_iterator(
                ANSWERS,
                filter=expr,
                output_fields=_ENTRY_FIELDS,
                batch_size=1000,
                partition_names=partitions,
            )
            found: list[CacheEntry] = []
            try:
                while batch := iterator.next():
                    found += [e for e in map(_entry_from, batch) if selector.picks(e)]
            finally:
                iterator.close()
            return sorted(found, key=lambda e: (e.agent, e.role, -e.stored_at, e.entry_id))

        return await self.db.run(call)

    async def _delete_impl(self, tenant: str, entry_ids: Sequence[str]) -> int:
        expr = (
            f"tenant == {_q(check_ident('tenant', tenant))}"
            f" and answer_id in {json.dumps(list(entry_ids))}"
        )

        def call() -> int:
            partitions = self.db.read_partitions(ANSWERS, tenant)
            if partitions is None:
                return 0
            existing = self.db.client.query(
                ANSWERS, filter=expr, output_fields=["answer_id"], partition_names=partitions
            )
            if not existing:
                return 0
            self.db.client.delete(
                ANSWERS, filter=expr, partition_name=partitions[0] if partitions else None
            )
            self.db.client.flush(ANSWERS)
            return len(existing)

        return await self.db.run(call)
