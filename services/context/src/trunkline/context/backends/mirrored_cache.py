"""The semantic cache served from memory, in front of its durable store (Milvus).

A cache hit must cost little more than the query's embedding, and a Milvus search with a scalar
filter and large output fields costs more than the rest of the hit. :class:`MirroredAnswerCache`
holds, per :class:`CacheScope` (tenant, agent version, caller role, knowledge-base version) in
use, a :class:`~trunkline.context.core.answer_mirror.ScopeAnswers` snapshot: the scope's
question vectors as a small matrix and their rows. The durable store stays the source of truth:

- a scope is read from the durable store on its first lookup, and re-read in the background
  every ``refresh_s / 2`` while it is used (entry ids and fields only; vectors are fetched for
  new ids alone, since an id fixes its question);
- a snapshot whose read began more than ``refresh_s`` ago is never served: the lookup reads the
  scope again first. So an entry another replica (or ``trunkline cache --uri``) stores shows
  here, and one it deletes or purges stops being served here, within ``refresh_s``;
- this process's own store, delete and invalidate change the durable store first and the
  snapshots before they return: a deleted or purged entry is never served here after the call
  returns (a read that began before the write is discarded, not applied);
- expiry (``expires_at``) is checked at each lookup; a scope larger than ``scope_entries`` is
  searched in the durable store, as is a lookup whose read was discarded by a concurrent write.
A miss is always safe: any doubt reads the durable store or serves nothing.
Cost: one scalar query per scope in use every ``refresh_s / 2``; memory about 1.6 kB per entry
(``max_entries`` over all scopes, least recently used scopes dropped first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trunkline.context.backends.embedder import DIM, Vectors
from trunkline.context.backends.store import AnswerCache
from trunkline.context.core.answer_mirror import ScopeAnswers, missing_vectors, reconcile
from trunkline.context.core.cache_policy import CacheScope, entry_id
from trunkline.context.core.types import CachedAnswer, CacheEntry, EntrySelector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MirrorSettings:
    refresh_s: float = 2.0  # the most a snapshot may lag the durable store when it is served
    scope_entries: int = 5000  # a larger scope is searched in the durable store
    max_entries: int = 100_000  # over all scopes held (least recently used dropped first)
    idle_s: float = 120.0  # a scope unused this long is dropped (read again on its next use)

    def __post_init__(self) -> None:
        if self.refresh_s <= 0:
            raise ValueError(f"refresh_s must be positive, got {self.refresh_s}")
        if not 0 < self.scope_entries < 16384:  # Milvus caps a query at 16384 rows
            raise ValueError(f"scope_entries must be in 1..16383, got {self.scope_entries}")


@dataclass(slots=True)
class _Held:
    answers: ScopeAnswers | None  # None: the scope is too large, the durable store searches it
    read_at: float  # clock reading when the durable read began
    used_at: float


class MirroredAnswerCache(AnswerCache):
    """``durable`` served from memory per scope (see the module's doc for the guarantees).

    ``background``: refresh the scopes in use from a task on the running event loop; without
    it (tests with a fake ``clock``) :meth:`refresh_due` does one pass when called.
    """

    def __init__(
        self,
        durable: AnswerCache,
        settings: MirrorSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        dim: int = DIM,
    ) -> None:
        super().__init__(durable.policy)
        self.durable = durable
        self.settings = settings or MirrorSettings()
        self._clock = clock
        self._background = background
        self._dim = dim
        self._held: dict[CacheScope, _Held] = {}
        self._loading: dict[CacheScope, asyncio.Task[_Held | None]] = {}
        self._writes: dict[str, int] = {}  # per tenant: local writes so far
        self._refresher: asyncio.Task[None] | None = None

    # -- reads -------------------------------------------------------------------------------

    async def _candidates_impl(
        self, scope: CacheScope, vector: Vectors, now: int, floor: float, limit: int
    ) -> list[CachedAnswer]:
        if self._background:
            self._ensure_refresher()
        held = self._held.get(scope)
        if held is None or self._stale(held):
            held = await self._load(scope)
        if held is None or held.answers is None or self._stale(held):
            return await self.durable.candidates(scope, vector, now, floor, limit)
        held.used_at = self._clock()
        return held.answers.nearest(vector, now, floor, limit)

    def _stale(self, held: _Held) -> bool:
        return self._clock() - held.read_at > self.settings.refresh_s

    def held(self, scope: CacheScope) -> ScopeAnswers | None:
        """The snapshot held for ``scope`` (None when none is, or the scope is too large)."""
        found = self._held.get(scope)
        return found.answers if found is not None else None

    async def refresh_due(self) -> int:
        """One refresh pass: scopes idle longer than ``idle_s`` are dropped, those read
        ``refresh_s / 2`` ago or more are read again; how many reads were started."""
        now, half = self._clock(), self.settings.refresh_s / 2
        read = 0
        for scope, held in list(self._held.items()):
            if now - held.used_at > self.settings.idle_s:
                self._held.pop(scope, None)
            elif now - held.read_at >= half:
                try:
                    await self._load(scope)
                except Exception as exc:  # it ages out: its next lookup reads it itself
                    log.warning("semantic cache mirror: reading %s failed: %r", scope, exc)
                read += 1
        return read

    async def _load(self, scope: CacheScope) -> _Held | None:
        """Read ``scope`` from the durable store (one read at a time per scope, shared)."""
        loop = asyncio.get_running_loop()
        task = self._loading.get(scope)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._read(scope))
            self._loading[scope] = task
            task.add_done_callback(lambda t: self._loaded(scope, t))
        return await asyncio.shield(task)

    def _loaded(self, scope: CacheScope, task: asyncio.Task[_Held | None]) -> None:
        if self._loading.get(scope) is task:
            del self._loading[scope]

    async def _read(self, scope: CacheScope) -> _Held | None:
        writes = self._writes.get(scope.tenant, 0)
        read_at = self._clock()
        limit = self.settings.scope_entries
        entries = await self.durable.scope_entries(scope, limit + 1)
        prior = self._held.get(scope)
        if len(entries) > limit:
            answers = None
        else:
            known = prior.answers if prior is not None else None
            fetched = await self.durable.vectors(scope.tenant, missing_vectors(known, entries))
            answers = reconcile(known, entries, fetched, self._dim)
        if self._writes.get(scope.tenant, 0) != writes:
            return None  # written here meanwhile: this read may predate the write
        held = _Held(answers, read_at, prior.used_at if prior is not None else read_at)
        self._keep(scope, held)
        return held

    def _keep(self, scope: CacheScope, held: _Held) -> None:
        for other in list(self._held):
            same = (other.tenant, other.agent, other.role) == (
                scope.tenant,
                scope.agent,
                scope.role,
            )
            if same and other.kb_version < scope.kb_version:
                del self._held[other]  # an older knowledge base: never looked up again
        self._held[scope] = held
        total = sum(len(h.answers) for h in self._held.values() if h.answers is not None)
        for other, h in sorted(self._held.items(), key=lambda kv: kv[1].used_at):
            if total <= self.settings.max_entries:
                break
            if other == scope:
                continue
            del self._held[other]
            total -= len(h.answers) if h.answers is not None else 0

    # -- writes: the durable store first, then the snapshots ----------------------------------

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
        try:
            await self.durable.store(
                scope,
                query=query,
                vector=vector,
                answer=answer,
                citations=citations,
                stored_at=stored_at,
                expires_at=expires_at,
            )
        except BaseException:
            self._wrote(scope.tenant)  # stored or not: the durable store decides
            self._held.pop(scope, None)
            raise
        self._wrote(scope.tenant)
        held = self._held.get(scope)
        if held is None or held.answers is None:
            return
        entry = CacheEntry(
            entry_id=entry_id(scope, query),
            agent=scope.agent,
            role=scope.role,
            kb_version=scope.kb_version,
            query=query[:4000],
            answer=answer[:16000],
            citations=tuple(citations),
            stored_at=stored_at,
            expires_at=expires_at,
        )
        answers = held.answers.with_entry(entry, vector)
        held.answers = answers if len(answers) <= self.settings.scope_entries else None

    async def _delete_impl(self, tenant: str, entry_ids: Sequence[str]) -> int:
        try:
            return await self.durable.delete(tenant, entry_ids)
        finally:
            self._forget(tenant, frozenset(entry_ids))

    async def _invalidate_impl(self, tenant: str) -> int:
        try:
            return await self.durable.invalidate(tenant)
        finally:
            self._forget(tenant, None)

    def _wrote(self, tenant: str) -> None:
        self._writes[tenant] = self._writes.get(tenant, 0) + 1

    def _forget(self, tenant: str, entry_ids: frozenset[str] | None) -> None:
        """Drop these entries (None: every scope) of ``tenant`` here, and discard any read of
        the tenant in flight."""
        self._wrote(tenant)
        for scope, held in list(self._held.items()):
            if scope.tenant != tenant:
                continue
            if entry_ids is None:
                del self._held[scope]
            elif held.answers is not None:
                held.answers = held.answers.without(entry_ids)

    # -- the rest is the durable store's -------------------------------------------------------

    async def _entries_impl(self, tenant: str, selector: EntrySelector) -> list[CacheEntry]:
        return await self.durable.entries(tenant, selector)

    async def _scope_entries_impl(self, scope: CacheScope, limit: int) -> list[CacheEntry]:
        return await self.durable.scope_entries(scope, limit)

    async def _vectors_impl(self, tenant: str, entry_ids: Sequence[str]) -> dict[str, Vectors]:
        return await self.durable.vectors(tenant, entry_ids)

    # -- background refresh ------------------------------------------------------------------

    def _ensure_refresher(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._refresher
        if task is None or task.done() or task.get_loop() is not loop:
            self._refresher = loop.create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s / 4)
            await self.refresh_due()

    async def aclose(self) -> None:
        """Stop the background refresh (on this event loop) and drop every snapshot."""
        task, self._refresher = self._refresher, None
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._held.clear()
