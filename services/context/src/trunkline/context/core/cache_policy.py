"""The semantic cache's store rule: which answers may be replayed to other callers (pure).

The context service alone decides (DESIGN.md §3): the gateway sends what the turn did
(:class:`AnswerFacts`) and :func:`store_decision` says store or skip, with a reason. Stored are
only answers a caller heard in full that either passed the grounding guard and came from the
LLM or the knowledge (extractive), or were written by a person; never a reply from the cache
itself, a deflection, a goodbye, small talk, a request to repeat, a fallback line or a
greeting; never an answer that used tools or a caller's live records; never from a shadow call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

STORED_SOURCES = frozenset({"llm", "knowledge"})
"""Reply sources whose grounded answers are stored."""

REPLY_SOURCES = frozenset(
    {
        "llm", "knowledge", "cache", "deflection", "goodbye", "small_talk", "repeat",
        "fallback", "greeting",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CacheScope:
    """A stored answer is only served within its scope: same tenant, agent version, caller role
    and knowledge-base version."""

    tenant: str
    agent: str
    role: str
    kb_version: int


@dataclass(frozen=True, slots=True)
class AnswerFacts:
    """What the turn that produced an answer did."""

    heard: str  # the answer as the caller heard it (what would be stored)
    generated: str = ""  # the answer as generated ("" for a human-written one)
    interrupted: bool = False
    grounded: bool = False  # every spoken clause passed the grounding guard
    reply_source: str = "llm"
    human_written: bool = False
    tool_calls: int = 0
    uses_live_data: bool = False  # the context block carried a caller's live records
    retrieval_confidence: float = 0.0
    shadow: bool = False  # a shadow runner's or a replay's turn: nobody heard it


@dataclass(frozen=True, slots=True)
class StoreDecision:
    store: bool
    reason: str  # why not ("" when stored): a short stable code, then details


def store_decision(facts: AnswerFacts, min_confidence: float = 0.0) -> StoreDecision:
    """Store or skip ``facts``' answer; ``min_confidence`` is the agent's out-of-domain line."""
    reason = _skip_reason(facts, min_confidence)
    return StoreDecision(store=not reason, reason=reason)


def _skip_reason(facts: AnswerFacts, min_confidence: float) -> str:
    if not facts.heard.strip():
        return "empty"
    if facts.shadow:
        return "shadow"
    if facts.tool_calls > 0:
        return f"tool_calls: the turn called {facts.tool_calls} tool(s)"
    if facts.uses_live_data:
        return "live_data: the answer used the caller's live records"
    if facts.interrupted:
        return "truncated: the caller interrupted the answer"
    if facts.generated and _words(facts.generated) != _words(facts.heard):
        return "truncated: the caller heard only part of the answer"
    if facts.human_written:
        return ""
    if facts.reply_source not in STORED_SOURCES:
        return f"reply_source: {facts.reply_source or 'unspecified'} replies are not stored"
    if not facts.grounded:
        return "not_grounded: the answer did not pass the grounding guard"
    if facts.retrieval_confidence < min_confidence:
        return (
            f"low_confidence: retrieval confidence {facts.retrieval_confidence:.2f}"
            f" below {min_confidence:.2f}"
        )
    return ""


def _words(text: str) -> list[str]:
    return text.split()


def entry_id(scope: CacheScope, query: str) -> str:
    """The id of the cache entry for ``query`` in ``scope`` (the same query overwrites it)."""
    key = f"{scope.tenant}\0{scope.agent}\0{scope.role}\0{scope.kb_version}\0{query}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
