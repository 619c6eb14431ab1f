"""The knowledge store and the semantic-cache store, as small ABCs.

Public methods own timeouts, retries, spans and metrics (:func:`guarded`); a backend writes the
``_*_impl`` methods only. The filter expression comes from :mod:`trunkline.context.core.filters`
and is evaluated by the store inside the vector search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.context.backends.embedder import Vectors
from trunkline.context.backends.guarded import CallPolicy, guarded
from trunkline.context.core.cache_policy import CacheScope
from trunkline.context.core.types import (
    CachedAnswer,
    CacheEntry,
    EntrySelector,
    Hit,
    StoredChunk,
)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    tenant: str
    roles: frozenset[str]
    kb_version: int


@dataclass(frozen=True, slots=True)
class SourceInfo:
    source: str
    doc_hash: str
    chunks: int
    kb_version: int
    flagged: int = 0  # chunks carrying instructions for the assistant (prompt injection)


class ChunkStore(ABC):
    """Chunks with their vectors and access metadata, plus the per-tenant KB registry."""

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=10.0, retries=1)

    async def search(self, vector: Vectors, expr: str, limit: int, *, tenant: str) -> list[Hit]:
        """The ``limit`` nearest chunks of ``tenant`` satisfying ``expr`` (inside the search).

        ``tenant`` selects where the store looks (its partition, where the store has one);
        ``expr`` names the tenant too, so a mismatch between them finds nothing.
        """
        return await guarded(
            self.policy, "store.search", lambda: self._search_impl(vector, expr, limit, tenant)
        )

    async def upsert(self, chunks: Sequence[StoredChunk], vectors: Vectors) -> int:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return 0
        return await guarded(
            self.policy, "store.upsert", lambda: self._upsert_impl(chunks, vectors)
        )

    async def delete_source(self, tenant: str, source: str) -> int:
        return sum((await self.delete_sources(tenant, [source])).values())

    async def delete_sources(self, tenant: str, sources: Sequence[str]) -> dict[str, int]:
        """Delete every chunk of ``sources`` (one flush); chunks removed per source."""
        if not sources:
            return {}
        return await guarded(
            self.policy, "store.delete", lambda: self._delete_sources_impl(tenant, sources)
        )

    async def sources(self, tenant: str) -> list[SourceInfo]:
        return await guarded(self.policy, "store.sources", lambda: self._sources_impl(tenant))

    async def source_hash(self, tenant: str, source: str) -> str | None:
        """The document hash of ``source`` as stored, or None when absent."""
        return await guarded(
            self.policy, "store.source_hash", lambda: self._source_hash_impl(tenant, source)
        )

    async def tenant(self, tenant: str) -> TenantInfo | None:
        return await guarded(self.policy, "store.tenant", lambda: self._tenant_impl(tenant))

    async def record_change(self, tenant: str, roles: Sequence[str]) -> TenantInfo:
        """Register ``roles`` for ``tenant`` and bump its knowledge-base version."""
        return await guarded(
            self.policy, "store.record_change", lambda: self._record_change_impl(tenant, roles)
        )

    @abstractmethod
    async def _search_impl(
        self, vector: Vectors, expr: str, limit: int, tenant: str
    ) -> list[Hit]: ...

    @abstractmethod
    async def _upsert_impl(self, chunks: Sequence[StoredChunk], vectors: Vectors) -> int: ...

    @abstractmethod
    async def _delete_sources_impl(self, tenant: str, sources: Sequence[str]) -> dict[str, int]: ...

    @abstractmethod
    async def _sources_impl(self, tenant: str) -> list[SourceInfo]: ...

    @abstractmethod
    async def _source_hash_impl(self, tenant: str, source: str) -> str | None: ...

    @abstractmethod
    async def _tenant_impl(self, tenant: str) -> TenantInfo | None: ...

    @abstractmethod
    async def _record_change_impl(self, tenant: str, roles: Sequence[str]) -> TenantInfo: ...


class AnswerCache(ABC):
    """Answers keyed by query embedding within a :class:`CacheScope`."""

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=5.0)

    async def candidates(
        self, scope: CacheScope, vector: Vectors, now: int, floor: float, limit: int
    ) -> list[CachedAnswer]:
        """The ``limit`` stored answers of ``scope`` nearest to ``vector`` with a cosine of at
        least ``floor`` that have not expired at ``now``, best first."""
        return await guarded(
            self.policy,
            "cache.lookup",
            lambda: self._candidates_impl(scope, vector, now, floor, limit),
        )

    async def store(
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
        await guarded(
            self.policy,
            "cache.store",
            lambda: self._store_impl(
                scope,
                query=query,
                vector=vector,
                answer=answer,
                citations=citations,
                stored_at=stored_at,
                expires_at=expires_at,
            ),
        )

    async def invalidate(self, tenant: str) -> int:
        """Drop every cached answer of ``tenant``."""
        return await guarded(self.policy, "cache.invalidate", lambda: self._invalidate_impl(tenant))

    async def entries(self, tenant: str, selector: EntrySelector) -> list[CacheEntry]:
        """``tenant``'s stored answers that ``selector`` picks, by agent, role and query."""
        return await guarded(
            self.policy, "cache.entries", lambda: self._entries_impl(tenant, selector)
        )

    async def delete(self, tenant: str, entry_ids: Sequence[str]) -> int:
        """Delete these entries of ``tenant``; how many there were."""
        if not entry_ids:
            return 0
        return await guarded(
            self.policy, "cache.delete", lambda: self._delete_impl(tenant, entry_ids)
        )

    async def scope_entries(self, scope: CacheScope, limit: int) -> list[CacheEntry]:
        """Up to ``limit`` entries stored in exactly ``scope`` (expired ones too), any order."""
        return await guarded(
            self.policy, "cache.scope_entries", lambda: self._scope_entries_impl(scope, limit)
        )

    async def vectors(self, tenant: str, entry_ids: Sequence[str]) -> dict[str, Vectors]:
        """The stored question vector of each of these entries of ``tenant`` that exists."""
        if not entry_ids:
            return {}
        return await guarded(
            self.policy, "cache.vectors", lambda: self._vectors_impl(tenant, entry_ids)
        )

    @abstractmethod
    async def _candidates_impl(
        self, scope: CacheScope, vector: Vectors, now: int, floor: float, limit: int
    ) -> list[CachedAnswer]: ...

    @abstractmethod
    async def _scope_entries_impl(self, scope: CacheScope, limit: int) -> list[CacheEntry]: ...

    @abstractmethod
    async def _vectors_impl(self, tenant: str, entry_ids: Sequence[str]) -> dict[str, Vectors]: ...

    @abstractmethod
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
    ) -> None: ...

    @abstractmethod
    async def _invalidate_impl(self, tenant: str) -> int: ...

    @abstractmethod
    async def _entries_impl(self, tenant: str, selector: EntrySelector) -> list[CacheEntry]: ...

    @abstractmethod
    async def _delete_impl(self, tenant: str, entry_ids: Sequence[str]) -> int: ...
