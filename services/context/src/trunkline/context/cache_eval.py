"""The semantic cache's labelled set (``tests/data/context/cache_pairs.yaml``): load, run, score.

Stored answers go in through :meth:`Resolver.store_answer` (as grounded LLM answers) and the
questions are asked through :meth:`Resolver.resolve`: the service's own code, over whatever
embedder and cache the resolver holds (MiniLM and Milvus Lite in the integration test and
``make bench-context``). Shared by both, so they measure the same thing.

A **false hit** is a near-miss question (``same: false``) that got any stored answer, or a true
paraphrase that got another entry's answer; a **cross-role** or **cross-tenant** hit is a hit on an
entry stored for another role or tenant than the question's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from trunkline.agents import Retrieval
from trunkline.context.agents import cache_agent_key
from trunkline.context.core.cache_match import decide, screen
from trunkline.context.core.cache_policy import AnswerFacts, CacheScope
from trunkline.context.core.types import CachedAnswer, Caller
from trunkline.context.resolver import Resolver

NOW = 1_750_000_000  # epoch seconds the set is stored and asked at


class CacheSetError(ValueError):
    """The labelled set cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    tenant: str
    role: str
    query: str
    answer: str


@dataclass(frozen=True, slots=True)
class Question:
    entry: str  # the paired entry's id
    tenant: str
    role: str
    asked: str
    same: bool
    kind: str
    line: int


@dataclass(frozen=True, slots=True)
class CacheSet:
    path: Path
    agents: dict[str, str]  # tenant -> agent
    roles: dict[str, tuple[str, ...]]  # tenant -> roles
    entries: dict[str, Entry]
    questions: tuple[Question, ...]

    def agent_key(self, tenant: str) -> str:
        return cache_agent_key(self.agents[tenant], "")


class _Loader(yaml.SafeLoader):
    """Keeps each mapping's line (1-based) under ``__line__`` for error messages."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = {str(k): v for k, v in loader.construct_mapping(node, deep=True).items()}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path: Path) -> CacheSet:
    """The labelled set in ``path``; :class:`CacheSetError` naming the file and line if bad."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise CacheSetError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CacheSetError(f"{path}: the set must be a mapping with tenants, entries, questions")

    def where(item: dict[str, Any]) -> str:
        return f"{path}:{item.get('__line__', '?')}"

    def need(item: dict[str, Any], key: str, kind: type) -> Any:
        value = item.get(key)
        if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
            raise CacheSetError(f"{where(item)}: {key!r} missing or not a {kind.__name__}")
        return value

    tenants = data.get("tenants") or {}
    agents = {t: need(spec, "agent", str) for t, spec in tenants.items() if t != "__line__"}
    roles = {t: tuple(need(spec, "roles", list)) for t, spec in tenants.items() if t != "__line__"}
    entries: dict[str, Entry] = {}
    for item in data.get("entries") or []:
        entry = Entry(
            id=need(item, "id", str),
            tenant=need(item, "tenant", str),
            role=need(item, "role", str),
            query=need(item, "query", str),
            answer=need(item, "answer", str),
        )
        if entry.id in entries:
            raise CacheSetError(f"{where(item)}: entry {entry.id!r} is defined twice")
        if entry.tenant not in agents:
            raise CacheSetError(f"{where(item)}: unknown tenant {entry.tenant!r}")
        if entry.role not in roles[entry.tenant]:
            raise CacheSetError(f"{where(item)}: role {entry.role!r} not in {entry.tenant}'s roles")
        entries[entry.id] = entry
    questions = []
    for item in data.get("questions") or []:
        paired = entries.get(need(item, "entry", str))
        if paired is None:
            raise CacheSetError(f"{where(item)}: unknown entry {item['entry']!r}")
        question = Question(
            entry=paired.id,
            tenant=item.get("tenant", paired.tenant),
            role=item.get("role", paired.role),
            asked=need(item, "asked", str),
            same=need(item, "same", bool),
            kind=need(item, "kind", str),
            line=int(item["__line__"]),
        )
        if question.tenant not in agents:
            raise CacheSetError(f"{where(item)}: unknown tenant {question.tenant!r}")
        crosses = (question.tenant, question.role) != (paired.tenant, paired.role)
        if question.same and crosses:
            raise CacheSetError(
                f"{where(item)}: a question of another role or tenant is never same"
            )
        questions.append(question)
    if not entries or not questions:
        raise CacheSetError(f"{path}: the set needs entries and questions")
    return CacheSet(path, agents, roles, entries, tuple(questions))


@dataclass(frozen=True, slots=True)
class Outcome:
    question: Question
    hit: str | None  # the set's id of the entry that answered, None on a miss
    similarity: float  # the hit's cosine, or the nearest candidate's in scope
    detail: str  # the cache stage's reason

    @property
    def correct(self) -> bool:
        return self.hit == self.question.entry if self.question.same else self.hit is None


async def store_entries(cset: CacheSet, resolver: Resolver, now: int = NOW) -> dict[str, str]:
    """Register the set's tenants and store every entry as a grounded LLM answer; cache entry
    id -> the set's entry id."""
    for tenant, roles in cset.roles.items():
        if await resolver.store.tenant(tenant) is None:
            await resolver.store.record_change(tenant, roles)
    ids: dict[str, str] = {}
    for entry in cset.entries.values():
        info = await resolver.authorize(entry.tenant, entry.role)
        facts = AnswerFacts(
            heard=entry.answer, generated=entry.answer, grounded=True, reply_source="llm",
            retrieval_confidence=1.0,
        )  # fmt: skip
        stored = await resolver.store_answer(
            entry.query, facts, [], tenant=entry.tenant, role=entry.role,
            agent=cset.agent_key(entry.tenant), kb_version=info.kb_version, now=now,
        )  # fmt: skip
        if not stored.stored:
            raise CacheSetError(f"entry {entry.id!r} was not stored: {stored.reason}")
        ids[stored.entry_id] = entry.id
    return ids


async def ask(
    cset: CacheSet, resolver: Resolver, ids: dict[str, str], now: int = NOW
) -> list[Outcome]:
    """Each question through :meth:`Resolver.resolve`; what answered it."""
    outcomes = []
    for q in cset.questions:
        result = await resolver.resolve(
            q.asked, Caller(q.tenant, q.role, now), Retrieval(), agent=cset.agent_key(q.tenant)
        )
        cache = next(s for s in result.stages if s.name == "cache")
        hit = result.cached
        outcomes.append(
            Outcome(
                question=q,
                hit=ids.get(hit.entry_id, f"?{hit.entry_id}") if hit else None,
                similarity=hit.similarity if hit else _nearest(cache.detail),
                detail=cache.detail,
            )
        )
    return outcomes


def _nearest(detail: str) -> float:
    """The cosine a miss's detail reports ("miss: 0.712 < 0.78", "... at 0.912")."""
    for word in reversed(detail.replace(")", " ").split()):
        try:
            return float(word)
        except ValueError:
            continue
    return 0.0


@dataclass(slots=True)
class Figures:
    paraphrases: int = 0
    paraphrase_hits: int = 0
    near_misses: int = 0
    false_hits: int = 0
    cross_role_hits: int = 0
    cross_tenant_hits: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    @property
    def paraphrase_hit_rate(self) -> float:
        return self.paraphrase_hits / self.paraphrases if self.paraphrases else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "paraphrases": self.paraphrases,
            "paraphrase_hits": self.paraphrase_hits,
            "paraphrase_hit_rate": round(self.paraphrase_hit_rate, 4),
            "near_misses": self.near_misses,
            "false_hits": self.false_hits,
            "cross_role_hits": self.cross_role_hits,
            "cross_tenant_hits": self.cross_tenant_hits,
            "by_kind": self.by_kind,
            "wrong": self.wrong,
        }


def score(cset: CacheSet, outcomes: Sequence[Outcome]) -> Figures:
    f = Figures()
    for o in outcomes:
        q = o.question
        kind = f.by_kind.setdefault(q.kind, {"questions": 0, "hits": 0, "correct": 0})
        kind["questions"] += 1
        kind["hits"] += o.hit is not None
        kind["correct"] += o.correct
        if q.same:
            f.paraphrases += 1
            f.paraphrase_hits += o.hit == q.entry
        else:
            f.near_misses += 1
        if o.hit is not None and not o.correct:
            f.false_hits += 1
        if o.hit is not None and o.hit in cset.entries:
            got = cset.entries[o.hit]
            f.cross_role_hits += got.tenant == q.tenant and got.role != q.role
            f.cross_tenant_hits += got.tenant != q.tenant
        if not o.correct:
            got_text = cset.entries[o.hit].query if o.hit in cset.entries else "-"
            f.wrong.append(f"line {q.line} [{q.kind}] {q.asked!r} -> {got_text!r} ({o.detail})")
    return f


async def sweep(
    cset: CacheSet,
    resolver: Resolver,
    ids: dict[str, str],
    thresholds: Sequence[float],
    now: int = NOW,
) -> list[dict[str, Any]]:
    """Paraphrase hit rate and false hits per cosine threshold, with and without the key-term
    rule, from the same candidates the resolver's lookup screens (the pure hit rule)."""
    assert resolver.cache is not None
    vectors = await resolver.embedder.embed([q.asked for q in cset.questions])
    base = resolver.cache_settings.rule
    found: list[list[CachedAnswer]] = []
    for q, vector in zip(cset.questions, vectors, strict=True):
        info = await resolver.authorize(q.tenant, q.role)
        scope = CacheScope(q.tenant, cset.agent_key(q.tenant), q.role, info.kb_version)
        found.append(
            await resolver.cache.candidates(
                scope, vector, now, 0.0, resolver.cache_settings.candidates
            )
        )
    rows = []
    for key_terms in (True, False):
        for threshold in thresholds:
            rule = replace(base, threshold=threshold, key_terms=key_terms)
            outcomes = []
            for q, candidates in zip(cset.questions, found, strict=True):
                hit = decide(screen(q.asked, candidates, rule), rule).hit
                outcomes.append(Outcome(q, ids.get(hit.entry_id) if hit else None, 0.0, ""))
            f = score(cset, outcomes)
            rows.append(
                {
                    "key_terms": key_terms,
                    "threshold": threshold,
                    "paraphrase_hit_rate": round(f.paraphrase_hit_rate, 4),
                    "false_hits": f.false_hits,
                }
            )
    return rows
