"""The semantic cache's rules: what may be stored, and when a stored answer may be served."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheScope:
    """A stored answer is only served within its scope: same tenant, agent and KB version."""

    tenant: str
    agent: str
    kb_version: int


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """What the turn that produced an answer did; decides whether the answer may be shared."""

    used_tools: bool
    caller_specific: bool
    answer: str


def may_store(facts: TurnFacts) -> tuple[bool, str]:
    """Only answers built from the knowledge base alone are shareable between callers."""
    if facts.used_tools:
        return False, "the turn called tools"
    if facts.caller_specific:
        return False, "the answer uses caller-specific data"
    if not facts.answer.strip():
        return False, "empty answer"
    return True, ""


def is_hit(similarity: float, threshold: float, expires_at: int, now: int) -> bool:
    """A stored answer is served when close enough and not expired."""
    return similarity >= threshold and now < expires_at


def entry_id(scope: CacheScope, query: str) -> str:
    """The id of the cache entry for ``query`` in ``scope`` (the same query overwrites it)."""
    key = f"{scope.tenant}\0{scope.agent}\0{scope.kb_version}\0{query}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
