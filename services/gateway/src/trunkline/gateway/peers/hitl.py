"""The human-in-the-loop peer as the gateway sees it: escalate a call, ask for an approval, and
follow a ticket until a person decided (the hitl service over gRPC in production,
``grpc_hitl.py``; a fake in tests)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from trunkline.gateway.peers.types import CallInfo, Citation


class TicketState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DECIDED = "decided"  # approvals (and a dismissed escalation): see TicketUpdate.outcome
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    TAKEN_OVER = "taken_over"  # an operator is on the call
    HANDED_BACK = "handed_back"
    ENDED = "ended"  # the operator ended the call

    @property
    def terminal(self) -> bool:
        return self not in (TicketState.QUEUED, TicketState.CLAIMED, TicketState.TAKEN_OVER)


class Outcome(StrEnum):
    NONE = ""
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class TicketUpdate:
    """One state of a ticket as ``WaitDecision`` streams it."""

    ticket_id: str
    state: TicketState
    outcome: Outcome = Outcome.NONE
    operator_id: str = ""
    note: str = ""
    arguments_json: str = ""  # approved with edited arguments; empty: as requested


@dataclass(frozen=True, slots=True)
class Line:
    """One transcript line: ``speaker`` is "caller", "agent" or "operator"."""

    speaker: str
    text: str
    turn_index: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class TurnGrounds:
    """What one turn was answered from (for the operator)."""

    turn_index: int
    query: str
    context_text: str = ""
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationRequest:
    reason: str  # core.escalation.Reason value
    detail: str = ""
    sentiment: float = 0.0
    frustration: float = 0.0
    transcript: tuple[Line, ...] = ()
    turns: tuple[TurnGrounds, ...] = ()
    customer: Mapping[str, str] = field(default_factory=dict)  # the caller's record fields
    customer_id: str = ""
    customer_source: str = ""
    timeout_s: float | None = None  # how long the ticket may wait; None: the service's
    request_id: str = ""  # idempotency key: a retried Escalate returns the first ticket


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    tool_call_id: str
    tool: str
    arguments_json: str
    justification: str = ""
    transcript: tuple[Line, ...] = ()
    timeout_s: float = 30.0
    request_id: str = ""  # idempotency key (the tool call's id within the call)


class HumanLoopError(Exception):
    """The hitl service could not be reached or refused the request (``code``: the gRPC
    status name, e.g. "FAILED_PRECONDITION" when the ticket moved on meanwhile)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class HumanLoop(ABC):
    """The hitl service's queue, from the gateway's side."""

    @abstractmethod
    async def escalate(self, call: CallInfo, request: EscalationRequest) -> str:
        """Queue the call for an operator; the ticket id."""

    @abstractmethod
    async def request_approval(self, call: CallInfo, request: ApprovalRequest) -> str:
        """Queue a tool call for approval; the ticket id."""

    @abstractmethod
    def watch(self, call: CallInfo, ticket_id: str) -> AsyncIterator[TicketUpdate]:
        """The ticket's state now, then every change; ends after a terminal state."""

    @abstractmethod
    async def offer_callback(
        self, call: CallInfo, ticket_id: str, *, accepted: bool, number: str = ""
    ) -> None:
        """The caller was offered a callback (the ticket stays queued)."""

    @abstractmethod
    async def cancel(self, call: CallInfo, ticket_id: str, reason: str) -> None:
        """Withdraw a ticket (the call ended, the agent no longer needs it)."""
