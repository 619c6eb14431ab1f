"""What the ledger records, as plain values (built from events by ``ledger.events``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trunkline.ledger.outcomes import EndReason
from trunkline.ledger.pricing import Usage


@dataclass(frozen=True, slots=True)
class CallKey:
    tenant: str
    call_id: str
    agent_name: str
    agent_version: str
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class TurnFact:
    """A ``turn.completed`` event: the turn's usage and what it tells about the outcome."""

    event_id: str
    occurred_at: datetime
    call: CallKey
    turn_index: int
    usage: Usage
    reply_source: str = ""
    intent: str = ""
    hang_up: bool = False
    succeeded_tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallEndFact:
    """A ``call_ended`` event: telephony time, end reason, the gateway's own outcome if any."""

    event_id: str
    occurred_at: datetime
    call: CallKey
    end_reason: EndReason
    duration_seconds: Decimal
    turn_count: int
    marked_qualified: bool = False


@dataclass(frozen=True, slots=True)
class EscalationFact:
    event_id: str
    occurred_at: datetime
    call: CallKey


@dataclass(frozen=True, slots=True)
class CostFact:
    """A ``cost`` event (``CostEntry``): usage a component reports outside the turn events."""

    event_id: str
    occurred_at: datetime
    call: CallKey
    component: str
    resource: str
    usage: Usage


Fact = TurnFact | CallEndFact | EscalationFact | CostFact


def kind_of(fact: Fact) -> str:
    match fact:
        case TurnFact():
            return "turn"
        case CallEndFact():
            return "call_ended"
        case EscalationFact():
            return "escalation"
        case CostFact():
            return "cost"
