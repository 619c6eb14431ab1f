"""Whether a finished turn's answer goes into the context service's semantic cache (pure).

Only an LLM answer built from the knowledge base alone is worth caching: not a cache hit, not a
shadow call, not an out-of-domain question, not a turn that called tools or read live records,
and only when the caller heard the whole answer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnFacts:
    """What the gateway knows about a finished turn."""

    answer: str  # what the LLM produced
    heard: str  # what the caller heard
    interrupted: bool = False
    cached: bool = False  # the answer came from the cache
    shadow: bool = False
    grounded: bool = False  # Resolve answered with a non-empty context block
    confidence: float = 0.0
    min_confidence: float = 0.0
    tool_calls: int = 0
    live_records: bool = False  # the context block carries live records


@dataclass(frozen=True, slots=True)
class CacheDecision:
    store: bool
    reason: str  # why not ("" when stored)
    uses_live_data: bool  # CachePolicy.uses_live_data for the request


def cache_decision(turn: TurnFacts) -> CacheDecision:
    live = turn.tool_calls > 0 or turn.live_records
    reason = _skip_reason(turn, live)
    return CacheDecision(store=not reason, reason=reason, uses_live_data=live)


def _skip_reason(turn: TurnFacts, live: bool) -> str:
    if turn.shadow:
        return "shadow"
    if turn.cached:
        return "cache_hit"
    if not turn.answer.strip():
        return "empty"
    if not turn.grounded:
        return "no_context"
    if turn.confidence < turn.min_confidence:
        return "low_confidence"
    if turn.tool_calls > 0:
        return "tool_calls"
    if live:
        return "live_data"
    if turn.interrupted or _words(turn.heard) != _words(turn.answer):
        return "truncated"
    return ""


def _words(text: str) -> list[str]:
    return text.split()
