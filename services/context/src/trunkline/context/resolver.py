"""Resolve: the semantic cache, then the five context stages, each timed, counted and traced.

This is the service's orchestration: it owns no I/O of its own (it awaits the backends) and every
decision is a pure function from :mod:`trunkline.context.core`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from opentelemetry import metrics, trace

from trunkline.agents import RankMode, Retrieval
from trunkline.context import cache_admin
from trunkline.context.backends.datasource import DataSource
from trunkline.context.backends.embedder import Embedder, Vectors
from trunkline.context.backends.equivalence import EquivalenceCheck
from trunkline.context.backends.ranker import EmbeddedRanker, Ranker
from trunkline.context.backends.store import AnswerCache, ChunkStore, TenantInfo
from trunkline.context.core import setalgebra
from trunkline.context.core.cache_match import HitRule, Verdict, decide, screen, to_verify
from trunkline.context.core.cache_policy import AnswerFacts, CacheScope, entry_id, store_decision
from trunkline.context.core.confidence import confidence
from trunkline.context.core.dedup import deduplicate
from trunkline.context.core.filters import (
    ANY_ROLE,
    access_filter,
    check_ident,
    knowledge_base_filter,
)
from trunkline.context.core.intents import IntentMatch, Vector, nearest_intent
from trunkline.context.core.ranking import order_by
from trunkline.context.core.types import (
    CachedAnswer,
    CacheEntry,
    Caller,
    EntrySelector,
    Hit,
    LiveRecord,
    Resolution,
    StageReport,
)
from trunkline.context.errors import (
    AccessDeniedError,
    BackendError,
    InvalidRequestError,
    UnknownTenantError,
)
from trunkline.redaction import detect

MAX_QUERY_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CacheSettings:
    enabled: bool = True
    rule: HitRule = field(default_factory=HitRule)
    ttl_s: int = 3600
    candidates: int = 4  # nearest stored questions screened per lookup


@dataclass(frozen=True, slots=True)
class Stored:
    """Outcome of :meth:`Resolver.store_answer`."""

    stored: bool
    reason: str = ""
    entry_id: str = ""


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
        *,
        cross_encoder: Ranker | None = None,
        cache_settings: CacheSettings | None = None,
        equivalence: EquivalenceCheck | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.cache = cache
        self.cross_encoder = cross_encoder
        self.equivalence = equivalence
        self.embedded = EmbeddedRanker()
        self.cache_settings = cache_settings or CacheSettings()
        self._intent_vectors: dict[tuple[object, ...], dict[str, tuple[tuple[str, ...], Vectors]]]
        self._intent_vectors = {}
        meter = metrics.get_meter("trunkline.context")
        self._cache_lookups = meter.create_counter(
            "context.cache.lookups", description="semantic cache lookups by result (hit/miss)"
        )
        self._cache_stores = meter.create_counter(
            "context.cache.stores", description="StoreAnswer outcomes (stored, or the skip reason)"
        )
        self._stage_ms = meter.create_histogram(
            "context.stage.duration", unit="ms", description="Resolve stage duration"
        )

    async def _intent(
        self, agent: str, intents: Mapping[str, tuple[str, ...]], vector: Vector
    ) -> IntentMatch:
        """The closest example phrase's intent; each agent's examples are embedded once."""
        if not intents:
            return IntentMatch("", 0.0)
        key = (agent, tuple(sorted((k, v) for k, v in intents.items())))
        examples = self._intent_vectors.get(key)
        if examples is None:
            phrases = [p for values in intents.values() for p in values]
            vectors = await self.embedder.embed(phrases) if phrases else None
            examples, row = {}, 0
            for name, values in intents.items():
                rows = vectors[row : row + len(values)] if vectors is not None else None
                if rows is not None and len(values):
                    examples[name] = (values, rows)
                row += len(values)
            self._intent_vectors[key] = examples
        return nearest_intent(vector, examples)

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
        spec: Retrieval,
        *,
        agent: str = "",
        state: Mapping[str, str] | None = None,
        sources: Sequence[DataSource] = (),
        use_cache: bool = True,
        knowledge_bases: Sequence[str] = (),
        live: Mapping[str, Sequence[LiveRecord]] | None = None,
        set_ops: Sequence[setalgebra.SetOp] | None = None,
        cache_threshold: float | None = None,
        prefer_first: Sequence[str] = (),
        intents: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Resolution:
        """The cache hit, or the five stages' context block, for ``query`` asked by ``caller``.

        ``spec`` is the agent version's retrieval strategy; ``knowledge_bases`` (default: the
        spec's ``data_sources``) restricts the search; set algebra runs ``set_ops`` (default: the
        spec's) over ``live`` records sent by the caller of Resolve, fetching the other sources
        from ``sources`` with the call ``state``. A source whose URL needs an entity the state
        lacks, or that fails, is skipped and named in the stage detail. ``prefer_first``:
        citations the caller's prompt cache holds; the kept items are re-ordered to put them
        first (see :func:`setalgebra.prefer_first`).
        """
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
        intent = await self._intent(agent, intents or {}, vector)

        rule = self.cache_settings.rule
        if cache_threshold is not None:
            rule = replace(rule, threshold=cache_threshold)
        cached = await self._lookup(
            stages, query, agent=agent, role=caller.role, info=info, vector=vector, now=caller.now,
            use_cache=use_cache, rule=rule,
        )  # fmt: skip
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
                    intent=intent.intent,
                    intent_score=intent.score,
                )
            )

        with stages.stage("filter", 0) as out:
            try:
                kbs = knowledge_base_filter(tuple(knowledge_bases or spec.data_sources))
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from exc
            expr = access_filter(caller) + (f" and {kbs}" if kbs else "")
            out["detail"] = expr
            out["count_out"] = expr.count(" and ") + 1

        with stages.stage("search", 1) as out:
            hits = await self.store.search(vector, expr, spec.candidates, tenant=caller.tenant)
            out["count_out"] = len(hits)

        with stages.stage("dedup", len(hits)) as out:
            unique = deduplicate(hits, spec.near_duplicate_threshold)
            out["count_out"] = len(unique)

        with stages.stage("rank", len(unique)) as out:
            ranked, mode = await self._rank(query, unique, spec)
            out["count_out"] = len(ranked)
            out["detail"] = mode

        with stages.stage("set_algebra", len(ranked)) as out:
            ops = spec_set_ops(spec) if set_ops is None else tuple(set_ops)
            records, skipped = await self._fetch(ops, sources, state or {}, live or {})
            ops = tuple(op for op in ops if op.source in records)
            items = setalgebra.combine(setalgebra.chunk_items(ranked), records, ops)
            block = setalgebra.pack(items, spec.token_budget)
            if prefer_first and block.items:
                kept = setalgebra.prefer_first(block.items, prefer_first)
                if kept != list(block.items):
                    block = setalgebra.pack(kept, spec.token_budget)
            out["count_out"] = len(block.items)
            out["detail"] = "; ".join(
                [f"{block.tokens} tokens" + (" (truncated)" if block.truncated else "")]
                + [f"{op.op} {op.source}" for op in ops]
                + skipped
            )

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
                intent=intent.intent,
                intent_score=intent.score,
            )
        )

    async def store_answer(
        self,
        query: str,
        facts: AnswerFacts,
        citations: Sequence[str],
        *,
        tenant: str,
        role: str,
        agent: str,
        kb_version: int,
        now: int,
        min_confidence: float = 0.0,
        ttl_s: int | None = None,
        overwrite: bool = True,
    ) -> Stored:
        """Store ``facts.heard`` as the answer to ``query`` for ``role`` callers of ``agent``,
        when :func:`store_decision` allows it.

        Refused (``stored`` False, with the reason) when the cache is off, the store rule says
        skip, the knowledge base changed since ``kb_version``, or (unless ``overwrite``) an
        answer the hit rule would serve is already stored: then its id is returned.
        """
        if self.cache is None or not self.cache_settings.enabled:
            return self._stored(Stored(False, "disabled: the semantic cache is off"))
        _check_agent(agent)
        query = query.strip()
        if not query:
            raise InvalidRequestError("query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequestError(f"query longer than {MAX_QUERY_CHARS} characters")
        if detect(query):  # the caller's own card, number or address: their question is never
            # another caller's, and the cache keeps no personal data at rest (issue 13)
            return self._stored(Stored(False, "personal_data: the question holds personal data"))
        decision = store_decision(facts, min_confidence)
        if not decision.store:
            return self._stored(Stored(False, decision.reason))
        info = await self.authorize(tenant, role)
        if info.kb_version != kb_version:
            return self._stored(
                Stored(
                    False,
                    f"kb_changed: knowledge base version {kb_version} -> {info.kb_version}",
                )
            )
        vector = (await self.embedder.embed([query]))[0]
        scope = CacheScope(tenant, agent, role, kb_version)
        if not overwrite:
            rule = self.cache_settings.rule
            found = await self.cache.candidates(
                scope, vector, now, rule.floor, self.cache_settings.candidates
            )
            existing = decide(screen(query, found, rule), rule).hit
            if existing is not None:
                return self._stored(Stored(False, "duplicate", existing.entry_id))
        await self.cache.store(
            scope,
            query=query,
            vector=vector,
            answer=facts.heard.strip(),
            citations=citations,
            stored_at=now,
            expires_at=now + (self.cache_settings.ttl_s if ttl_s is None else ttl_s),
        )
        return self._stored(Stored(True, "", entry_id(scope, query)))

    async def cache_entries(self, tenant: str, selector: EntrySelector) -> list[CacheEntry]:
        """See :func:`trunkline.context.cache_admin.cache_entries`."""
        return await cache_admin.cache_entries(self.store, self._cache(), tenant, selector)

    async def delete_cache_entries(self, tenant: str, selector: EntrySelector) -> int:
        """See :func:`trunkline.context.cache_admin.delete_cache_entries`."""
        return await cache_admin.delete_cache_entries(self.store, self._cache(), tenant, selector)

    def _cache(self) -> AnswerCache:
        if self.cache is None:
            raise InvalidRequestError("this context service has no semantic cache")
        return self.cache

    def _stored(self, outcome: Stored) -> Stored:
        reason = outcome.reason.split(":", 1)[0]
        self._cache_stores.add(1, {"outcome": "stored" if outcome.stored else reason})
        return outcome

    async def _lookup(
        self,
        stages: _Stages,
        query: str,
        *,
        agent: str,
        role: str,
        info: TenantInfo,
        vector: Vectors,
        now: int,
        use_cache: bool,
        rule: HitRule,
    ) -> CachedAnswer | None:
        if self.cache is None or not self.cache_settings.enabled or not use_cache or not agent:
            return None
        _check_agent(agent)
        with stages.stage("cache", 1) as out:
            scope = CacheScope(info.tenant, agent, role, info.kb_version)
            found = await self.cache.candidates(
                scope, vector, now, rule.floor, self.cache_settings.candidates
            )
            verdict = await self._verify(query, found, rule)
            out["count_out"] = 1 if verdict.hit else 0
            out["detail"] = verdict.detail
        self._cache_lookups.add(1, {"result": "hit" if verdict.hit else "miss"})
        return verdict.hit

    async def _verify(self, query: str, found: Sequence[CachedAnswer], rule: HitRule) -> Verdict:
        """Key terms, then the equivalence check where one is configured (the embedded rule,
        stricter, when it fails)."""
        screened = screen(query, found, rule)
        if self.equivalence is None:
            return decide(screened, rule)
        pending = to_verify(screened, rule)
        if not pending:
            return decide(screened, rule, [])
        try:
            scores = await self.equivalence.scores(query, [c.query for c in pending])
        except Exception as exc:
            trace.get_current_span().add_event(
                "cache equivalence check failed: embedded fallback", {"error": repr(exc)}
            )
            return decide(screened, rule, check_failed=True)
        return decide(screened, rule, scores)

    async def _rank(
        self, query: str, hits: list[Hit], spec: Retrieval
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
        self,
        ops: Sequence[setalgebra.SetOp],
        sources: Sequence[DataSource],
        state: Mapping[str, str],
        live: Mapping[str, Sequence[LiveRecord]],
    ) -> tuple[dict[str, Sequence[LiveRecord]], list[str]]:
        """Records per source for ``ops``, and notes on the sources that were skipped."""
        records: dict[str, Sequence[LiveRecord]] = {
            name: rows for name, rows in live.items() if any(op.source == name for op in ops)
        }
        by_name = {s.spec.name: s for s in sources}
        needed = sorted({op.source for op in ops} - set(records))
        missing = [name for name in needed if name not in by_name]
        if missing:
            raise InvalidRequestError(
                f"set operations name {missing}: neither a declared live source nor live records"
            )
        skipped: list[str] = []
        ready = []
        for name in needed:
            lacks = by_name[name].missing(state)
            if lacks:
                skipped.append(f"skipped {name}: call state lacks {', '.join(lacks)}")
            else:
                ready.append(by_name[name])
        results = await asyncio.gather(*(s.fetch(state) for s in ready), return_exceptions=True)
        for source, result in zip(ready, results, strict=True):
            if isinstance(result, BackendError):
                skipped.append(f"skipped {source.spec.name}: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                records[source.spec.name] = result
        return records, skipped

    def _done(self, resolution: Resolution) -> Resolution:
        for report in resolution.stages:
            self._stage_ms.record(report.duration_ms, {"stage": report.name})
        return resolution


def _check_agent(agent: str) -> None:
    try:
        check_ident("agent", agent)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc


def spec_set_ops(spec: Retrieval) -> tuple[setalgebra.SetOp, ...]:
    """The agent spec's set operations as the core's :class:`~setalgebra.SetOp`."""
    return tuple(setalgebra.SetOp(op=o.op.value, source=o.source) for o in spec.set_operations)
