"""A call's outcome from what happened in it (pure).

- **escalated**: an ``escalation`` event for the call, or it ended by transfer;
- **resolved** by the agent: the agent's qualified outcome was reached (the spec's
  ``qualified_outcome.tool`` ran and succeeded, or the gateway marked ``CallEnded.qualified``),
  or the conversation closed with a goodbye (the caller's, or the agent's hang-up after its
  goodbye) after at least one answered turn;
- **abandoned**: anything else (the caller hung up mid-conversation, a timeout, an error, an
  operator's hang-up).

``qualified`` — what "cost per qualified outcome" divides by — is the spec's definition: with a
``qualified_outcome.tool`` only a successful call of that tool qualifies; a spec whose qualified
outcome has no tool counts every resolved call; a spec without one counts none (the gateway's
own ``CallEnded.qualified`` always counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    ABANDONED = "abandoned"


class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"
    AGENT_HANGUP = "agent_hangup"
    TRANSFERRED = "transferred"
    ADMIN_HANGUP = "admin_hangup"
    TIMEOUT = "timeout"
    ERROR = "error"
    UNKNOWN = "unknown"


ANSWER_SOURCES = frozenset({"llm", "knowledge", "cache", "fallback"})
"""Reply sources that answer the caller (a deflection, a repeat or small talk does not)."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the ledger saw of one call, accumulated over its events."""

    end_reason: EndReason
    escalated: bool = False
    answered_turns: int = 0
    goodbye: bool = False  # the caller said goodbye, or the agent hung up after its goodbye
    succeeded_tools: frozenset[str] = frozenset()
    marked_qualified: bool = False  # CallEnded.qualified from the gateway


@dataclass(frozen=True, slots=True)
class QualifiedRule:
    """The agent version's qualified-outcome definition (``AgentSpec.qualified_outcome``)."""

    defined: bool = False
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    qualified: bool


def decide(facts: CallFacts, rule: QualifiedRule) -> Decision:
    if facts.escalated or facts.end_reason is EndReason.TRANSFERRED:
        return Decision(Outcome.ESCALATED, qualified=False)
    tool_reached = rule.tool is not None and rule.tool in facts.succeeded_tools
    if facts.marked_qualified or tool_reached:
        return Decision(Outcome.RESOLVED, qualified=True)
    closed = facts.goodbye and facts.end_reason in (EndReason.CALLER_HANGUP, EndReason.AGENT_HANGUP)
    if closed and facts.answered_turns > 0:
        return Decision(Outcome.RESOLVED, qualified=rule.defined and rule.tool is None)
    return Decision(Outcome.ABANDONED, qualified=False)
