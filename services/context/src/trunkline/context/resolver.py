"""Resolve: the semantic cache, then the five context stages, each timed, counted and traced.

This is the service's orchestration: it owns no I/O of its own (it awaits the backends) and every
decision is a pure function from :mod:`trunkline.context.core`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import metrics, trace

from trunkline.context.backends.datasource import DataSource
from trunkline.context.backends.embedder import Embedder, Vectors
from trunkline.context.backends.ranker import EmbeddedRanker, Ranker
from trunkline.context.backends.store import AnswerCache, ChunkStore, TenantInfo
from trunkline.context.core import setalgebra
from trunkline.context.core.cache_policy import CacheScope, TurnFacts, may_store
from trunkline.context.core.confidence import confidence
from trunkline.context.core.dedup import deduplicate
from trunkline.context.core.filters import ANY_ROLE, access_filter, check_ident
from trunkline.context.core.ranking import order_by
from trunkline.context.core.types import (
    CachedAnswer,
    Caller,
    Hit,
    LiveRecord,
    Resolution,
    StageReport,
)
from trunkline.context.errors import AccessDeniedError, InvalidRequestError, UnknownTenantError
from trunkline.context.spec import RankMode, RetrievalSpec

MAX_QUERY_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = True
    threshold: float = 0.85
    ttl_s: int = 3600


@dataclass(slots=True)
class _Stages:
    reports: list[StageReport] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, count_in: int) -> Iterator[dict[str, object]]:
        tracer = trace.get_tracer("trunkline.context")
        out: dict[str, object] = {"count_out": 0, "detail": ""}
        start = time.perf_counter()
        with tracer.start_as_current_span(f"context.{name}") as span:
            yield out
            ms = (time.perf_counter() - start) * 1000
            span.set_attribute("count_in", count_in)
            span.set_attribute("count_out", int(str(out["count_out"])))
            if out["detail"]:
                span.set_attribute("detail", str(out["detail"]))
        self.reports.append(
            StageReport(name, ms, count_in, int(str(out["count_out"])), str(out["detail"]))
        )


class Resolver:
    def __init__(
        self,
        embedder: Embedder,
        store: ChunkStore,
        cache: AnswerCache | None = None,
        cross_encoder: Ranker | None = None,
        cache_settings: CacheSettings | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.cache = cache
        self.cross_encoder = cross_encoder
        self.embedded = EmbeddedRanker()
        self.cache_settings = cache_settings or CacheSettings()
        meter = metrics.get_meter("trunkline.context")
        self._cache_lookups = meter.create_counter(
            "context.cache.lookups", description="semantic cache lookups by result (hit/miss)"
        )
        self._stage_ms = meter.create_histogram(
            "context.stage.duration", unit="ms", description="Resolve stage duration"
        )

    async def authorize(self, tenant: str, role: str) -> TenantInfo:
        """The tenant's KB info; raises for a bad id, an unknown tenant or a role without access."""
        try:
            check_ident("tenant", tenant)
            check_ident("role", role)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        info = await self.store.tenant(tenant)
        if info is None:
            raise UnknownTenantError(tenant)
        if role not in info.roles and ANY_ROLE not in info.roles:
            raise AccessDeniedError(tenant, role)
        return info

    async def resolve(
        self,
        query: str,
        caller: Caller,
        spec: RetrievalSpec,
        *,
        agent: str = "",
        state: Mapping[str, str] | None = None,
        sources: Sequence[DataSource] = (),
        use_cache: bool = True,
    ) -> Resolution:
        query = query.strip()
        if not query:
            raise InvalidRequestError("query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequestError(f"query longer than {MAX_QUERY_CHARS} characters")
        info = await self.authorize(caller.tenant, caller.role)
        stages = _Stages()

        with stages.stage("embed", 1) as out:
            vector = (await self.embedder.embed([query]))[0]
            out["count_out"] = 1

        cached = await self._lookup(
            stages, agent, info, vector, now=caller.now, use_cache=use_cache
        )
        if cached is not None:
            return self._done(
                Resolution(
                    block=None,
                    cached=cached,
                    confidence=1.0,
                    out_of_domain=False,
                    kb_version=info.kb_version,
                    cacheable=False,
                    rank_mode="cache",
                    stages=tuple(stages.reports),
                )
            )

        with stages.stage("filter", 0) as out:
            expr = access_filter(caller)
            out["detail"] = expr
            out["count_out"] = expr.count(" and ") + 1

        with stages.stage("search", 1) as out:
            hits = await self.store.search(vector, expr, spec.candidates)
            out["count_out"] = len(hits)

        with stages.stage("dedup", len(hits)) as out:
            unique = deduplicate(hits, spec.near_duplicate_threshold)
            out["count_out"] = len(unique)

        with stages.stage("rank", len(unique)) as out:
            ranked, mode = await self._rank(query, unique, spec)
            out["count_out"] = len(ranked)
            out["detail"] = mode

        with stages.stage("set_algebra", len(ranked)) as out:
            records = await self._fetch(spec, sources, state or {})
            items = setalgebra.combine(setalgebra.chunk_items(ranked), records, spec.set_ops())
            block = setalgebra.pack(items, spec.token_budget)
            out["count_out"] = len(block.items)
            out["detail"] = f"{block.tokens} tokens" + (" (truncated)" if block.truncated else "")

        score = confidence(hits)
        return self._done(
            Resolution(
                block=block,
                cached=None,
                confidence=score,
                out_of_domain=score < spec.min_confidence,
                kb_version=info.kb_version,
                cacheable=not any(i.live for i in block.items),
                rank_mode=mode,
                stages=tuple(stages.reports),
            )
        )

    async def store_answer(
        self,
        query: str,
        answer: str,
        citations: Sequence[str],
        *,
        tenant: str,
        role: str,
        agent: str,
        kb_version: int,
        facts: TurnFacts,
        now: int,
    ) -> tuple[bool, str]:
        """Store an answer when the turn's policy allows it; returns (stored, reason if not)."""
        if self.cache is None or not self.cache_settings.enabled:
            return False, "the semantic cache is disabled"
        allowed, reason = may_store(facts)
        if not allowed:
            return False, reason
        info = await self.authorize(tenant, role)
        if info.kb_version != kb_version:
            return False, f"knowledge base changed (version {kb_version} -> {info.kb_version})"
        _check_agent(agent)
        vector = (await self.embedder.embed([query.strip()]))[0]
        scope = CacheScope(tenant, agent, kb_version)
        await self.cache.store(
            scope,
            query=query.strip(),
            vector=vector,
            answer=answer,
            citations=citations,
            expires_at=now + self.cache_settings.ttl_s,
        )
        return True, ""

    async def _lookup(
        self,
        stages: _Stages,
        agent: str,
        info: TenantInfo,
        vector: Vectors,
        *,
        now: int,
        use_cache: bool,
    ) -> CachedAnswer | None:
        if self.cache is None or not self.cache_settings.enabled or not use_cache or not agent:
            return None
        _check_agent(agent)
        with stages.stage("cache", 1) as out:
            scope = CacheScope(info.tenant, agent, info.kb_version)
            cached = await self.cache.lookup(scope, vector, now, self.cache_settings.threshold)
            out["count_out"] = 1 if cached else 0
            out["detail"] = f"hit {cached.similarity:.3f}" if cached else "miss"
        self._cache_lookups.add(1, {"result": "hit" if cached else "miss"})
        return cached

    async def _rank(
        self, query: str, hits: list[Hit], spec: RetrievalSpec
    ) -> tuple[list[tuple[Hit, float]], str]:
        if spec.rank_mode == RankMode.NONE:
            return [(h, h.similarity) for h in hits[: spec.top_k]], "none"
        if spec.rank_mode == RankMode.CROSS_ENCODER and self.cross_encoder is not None:
            try:
                scores = await self.cross_encoder.score(query, hits)
                return order_by(hits, scores, spec.top_k), "cross_encoder"
            except Exception:
                scores = await self.embedded.score(query, hits)
                return order_by(hits, scores, spec.top_k), "embedded_fallback"
        scores = await self.embedded.score(query, hits)
        return order_by(hits, scores, spec.top_k), "embedded"

    async def _fetch(
        self, spec: RetrievalSpec, sources: Sequence[DataSource], state: Mapping[str, str]
    ) -> dict[str, list[LiveRecord]]:
        needed = {op.source for op in spec.set_operations}
        chosen = [s for s in sources if s.spec.name in needed]
        missing = needed - {s.spec.name for s in chosen}
        if missing:
            raise InvalidRequestError(f"no data source configured for {sorted(missing)}")
        results = await asyncio.gather(*(s.fetch(state) for s in chosen))
        return {s.spec.name: r for s, r in zip(chosen, results, strict=True)}

    def _done(self, resolution: Resolution) -> Resolution:
        for report in resolution.stages:
            self._stage_ms.record(report.duration_ms, {"stage": report.name})
        return resolution


def _check_agent(agent: str) -> None:
    try:
        check_ident("agent", agent)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
