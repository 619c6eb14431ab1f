"""Tickets and their state transitions: pure functions of (ticket, action, now), no I/O.

An escalation goes QUEUED -> CLAIMED (an operator reserved it for ``claim_timeout``; unaccepted,
it lapses back to QUEUED) -> TAKEN_OVER (the operator is on the call) -> HANDED_BACK or ENDED.
An approval goes QUEUED -> (CLAIMED ->) DECIDED (approved, approved with edited arguments, or
denied). Any open ticket (QUEUED or CLAIMED) past ``expires_at`` becomes EXPIRED; one the agent
withdraws becomes CANCELLED; an escalation the operator dismisses is DECIDED/DENIED.

Times are wall-clock seconds since the epoch (tickets outlive the process), passed in by the
caller; every transition returns a new frozen ticket or raises a :class:`TicketError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Kind(StrEnum):
    ESCALATION = "escalation"
    APPROVAL = "approval"


class State(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    TAKEN_OVER = "taken_over"
    HANDED_BACK = "handed_back"
    ENDED = "ended"
    DECIDED = "decided"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN = frozenset({State.QUEUED, State.CLAIMED})
"""Waiting for an operator: listed in the queue, can expire."""
TERMINAL = frozenset(
    {State.HANDED_BACK, State.ENDED, State.DECIDED, State.EXPIRED, State.CANCELLED}
)


class Outcome(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class TicketError(Exception):
    """An action the ticket's state or the request does not allow; the message says why."""


class InvalidRequest(TicketError):  # noqa: N818 (names the console uses)
    """Malformed input (unknown outcome, bad tenant token, arguments not a JSON object)."""


class NotFound(TicketError):  # noqa: N818 (names the console uses)
    """No such ticket (never existed, or purged)."""


class WrongTenant(TicketError):  # noqa: N818 (names the console uses)
    """The ticket belongs to another tenant than the operator's."""


class Closed(TicketError):  # noqa: N818 (names the console uses)
    """The ticket is already terminal (decided, expired, cancelled, handed back, ended)."""


class Held(TicketError):  # noqa: N818 (names the console uses)
    """Another operator holds the ticket (claimed and not lapsed, or on the call)."""


class WrongState(TicketError):  # noqa: N818 (names the console uses)
    """The action does not apply to the ticket's kind or state."""


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def check_token(value: str, what: str) -> str:
    """``value`` if it is a valid NATS subject token (tenant ids, ticket ids, operator ids)."""
    if not _TOKEN.fullmatch(value):
        raise InvalidRequest(
            f"{what} {value!r} is invalid: use letters, digits, '-' and '_' (non-empty)"
        )
    return value


@dataclass(frozen=True, slots=True)
class CallRef:
    """Tenant, call, caller and agent a ticket is about (the request's CallContext)."""

    tenant_id: str
    call_id: str = ""
    caller_id: str = ""
    caller_address: str = ""
    caller_name: str = ""
    caller_role: str = ""
    caller_verified: bool = False
    agent_name: str = ""
    agent_version: str = ""
    turn_index: int = 0
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One transcript line: speaker is "caller", "agent", "operator" or "system"."""

    speaker: str
    text: str
    turn_index: int = 0
    spoken_at: float = 0.0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Citation:
    id: str
    title: str = ""
    uri: str = ""
    source_id: str = ""
    knowledge_base: str = ""
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What one turn was grounded in: the caller's words, the context block, its citations."""

    turn_index: int
    query: str = ""
    context_text: str = ""
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: str = ""
    source: str = ""
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationInfo:
    reason: str = "unspecified"  # caller_request, frustration, out_of_domain, ...
    detail: str = ""
    sentiment: float = 0.0
    frustration: float = 0.0
    turns: tuple[TurnContext, ...] = ()
    customer: CustomerRecord | None = None
    operator_token: str = field(default="", repr=False)  # secret: for the accepting operator


@dataclass(frozen=True, slots=True)
class ApprovalInfo:
    tool_call_id: str
    tool_name: str
    arguments_json: str = "{}"
    risk: str = "high"  # low, medium, high, critical
    justification: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    operator_id: str = ""
    note: str = ""
    decided_at: float = 0.0
    arguments_json: str = ""  # approved with edited arguments; empty: as requested


@dataclass(frozen=True, slots=True)
class Callback:
    accepted: bool
    number: str = ""
    offered_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Ticket:
    ticket_id: str
    kind: Kind
    call: CallRef
    created_at: float
    expires_at: float
    state: State = State.QUEUED
    operator_id: str = ""
    claim_expires_at: float | None = None
    accepted_at: float | None = None
    requeues: int = 0
    summary: str = ""
    transcript: tuple[Line, ...] = ()
    escalation: EscalationInfo | None = None
    approval: ApprovalInfo | None = None
    decision: Decision | None = None
    callback: Callback | None = None

    @property
    def tenant_id(self) -> str:
        return self.call.tenant_id

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


def new_escalation(
    ticket_id: str,
    *,
    call: CallRef,
    info: EscalationInfo,
    transcript: tuple[Line, ...],
    summary: str,
    now: float,
    timeout: float,
) -> Ticket:
    check_token(call.tenant_id, "tenant")
    check_token(ticket_id, "ticket id")
    if call.shadow:
        raise InvalidRequest("shadow traffic never reaches an operator (context.shadow is set)")
    if timeout <= 0:
        raise InvalidRequest(f"timeout must be positive, got {timeout}s")
    return Ticket(
        ticket_id=ticket_id,
        kind=Kind.ESCALATION,
        call=call,
        created_at=now,
        expires_at=now + timeout,
        summary=summary,
        transcript=transcript,
        escalation=info,
    )


def new_approval(
    ticket_id: str,
    *,
    call: CallRef,
    info: ApprovalInfo,
    transcript: tuple[Line, ...],
    summary: str,
    now: float,
    timeout: float,
) -> Ticket:
    check_token(call.tenant_id, "tenant")
    check_token(ticket_id, "ticket id")
    if call.shadow:
        raise InvalidRequest("shadow traffic never reaches an operator (context.shadow is set)")
    if timeout <= 0:
        raise InvalidRequest(f"timeout must be positive, got {timeout}s")
    if not info.tool_name:
        raise InvalidRequest("an approval needs the tool call's name")
    check_json_object(info.arguments_json, "tool arguments")
    return Ticket(
        ticket_id=ticket_id,
        kind=Kind.APPROVAL,
        call=call,
        created_at=now,
        expires_at=now + timeout,
        summary=summary,
        transcript=transcript,
        approval=info,
    )


def check_json_object(text: str, what: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{what} are not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return text


def _claim_lapsed(ticket: Ticket, now: float) -> bool:
    return (
        ticket.state is State.CLAIMED
        and ticket.claim_expires_at is not None
        and now >= ticket.claim_expires_at
    )


def _check_open_for(ticket: Ticket, operator_id: str, now: float, action: str) -> None:
    """An operator may act on a ticket that is queued, claimed by them, or whose claim lapsed."""
    check_token(operator_id, "operator id")
    if ticket.is_terminal or (ticket.is_open and now >= ticket.expires_at):
        state = State.EXPIRED if ticket.is_open else ticket.state
        raise Closed(f"ticket {ticket.ticket_id} is {state.value}: cannot {action} it")
    if ticket.state is State.TAKEN_OVER:
        raise Held(
            f"ticket {ticket.ticket_id} was already accepted by operator {ticket.operator_id}"
        )
    if (
        ticket.state is State.CLAIMED
        and ticket.operator_id != operator_id
        and not _claim_lapsed(ticket, now)
    ):
        raise Held(f"ticket {ticket.ticket_id} is claimed by operator {ticket.operator_id}")


def claim(ticket: Ticket, operator_id: str, now: float, claim_timeout: float) -> Ticket:
    """Reserve the ticket for ``operator_id`` until ``now + claim_timeout`` (renews own claim)."""
    _check_open_for(ticket, operator_id, now, "claim")
    return replace(
        ticket,
        state=State.CLAIMED,
        operator_id=operator_id,
        claim_expires_at=min(now + claim_timeout, ticket.expires_at),
    )


def accept(ticket: Ticket, operator_id: str, now: float) -> Ticket:
    """The operator takes the escalated call over (from QUEUED or their own claim). The same
    operator accepting again (a retry after a lost reply, a hitl restart) gets the ticket as
    it is, unchanged."""
    if ticket.kind is not Kind.ESCALATION:
        raise WrongState(
            f"ticket {ticket.ticket_id} is an approval: approve, edit or deny it instead"
        )
    if ticket.state is State.TAKEN_OVER and ticket.operator_id == check_token(
        operator_id, "operator id"
    ):
        return ticket
    _check_open_for(ticket, operator_id, now, "accept")
    return replace(
        ticket,
        state=State.TAKEN_OVER,
        operator_id=operator_id,
        claim_expires_at=None,
        accepted_at=now,
    )


def hand_back(
    ticket: Ticket, operator_id: str, now: float, *, note: str = "", end_call: bool = False
) -> Ticket:
    """The operator on the call hands it back to the agent (``note``: what was said) or ends it.
    The same hand back (or end) by the same operator again gets the ticket as it is (a retry
    after a lost reply); a different one is refused."""
    check_token(operator_id, "operator id")
    done = State.ENDED if end_call else State.HANDED_BACK
    decision = ticket.decision
    if (
        ticket.state is done
        and ticket.operator_id == operator_id
        and decision is not None
        and decision.outcome is (Outcome.DENIED if end_call else Outcome.APPROVED)
        and decision.operator_id == operator_id
        and decision.note == note
    ):
        return ticket
    if ticket.state is not State.TAKEN_OVER:
        raise (Closed if ticket.is_terminal else WrongState)(
            f"ticket {ticket.ticket_id} is {ticket.state.value}, not taken over: nothing to "
            f"{'end' if end_call else 'hand back'}"
        )
    if ticket.operator_id != operator_id:
        raise Held(f"ticket {ticket.ticket_id} is on operator {ticket.operator_id}'s line")
    return replace(
        ticket,
        state=State.ENDED if end_call else State.HANDED_BACK,
        decision=Decision(
            outcome=Outcome.DENIED if end_call else Outcome.APPROVED,
            operator_id=operator_id,
            note=note,
            decided_at=now,
        ),
    )


def decide(
    ticket: Ticket,
    operator_id: str,
    now: float,
    outcome: Outcome,
    *,
    note: str = "",
    arguments_json: str = "",
) -> Ticket:
    """Approve (optionally with edited arguments) or deny an approval; deny = dismiss an
    escalation (the agent keeps the call)."""
    if outcome not in (Outcome.APPROVED, Outcome.DENIED):
        raise InvalidRequest(f"an operator decides approved or denied, not {outcome.value}")
    if ticket.kind is Kind.ESCALATION and outcome is Outcome.APPROVED:
        raise WrongState(
            f"ticket {ticket.ticket_id} is an escalation: accept it (take the call) or deny "
            "(dismiss) it"
        )
    if arguments_json:
        if ticket.kind is not Kind.APPROVAL or outcome is not Outcome.APPROVED:
            raise InvalidRequest("edited arguments go only with approving an approval ticket")
        check_json_object(arguments_json, "edited arguments")
    _check_open_for(ticket, operator_id, now, "decide")
    return replace(
        ticket,
        state=State.DECIDED,
        operator_id=operator_id,
        claim_expires_at=None,
        decision=Decision(outcome, operator_id, note, now, arguments_json),
    )


def cancel(ticket: Ticket, now: float, reason: str = "") -> Ticket:
    """The agent withdraws the ticket (call ended...). An escalation with an accepted callback
    stays in the queue; a taken-over call that ends is ENDED; a terminal ticket is unchanged."""
    if ticket.is_terminal:
        return ticket
    if ticket.state is State.TAKEN_OVER:
        return replace(
            ticket,
            state=State.ENDED,
            decision=Decision(Outcome.CANCELLED, ticket.operator_id, reason, now),
        )
    if ticket.callback is not None and ticket.callback.accepted:
        return ticket
    return replace(
        ticket,
        state=State.CANCELLED,
        claim_expires_at=None,
        decision=Decision(Outcome.CANCELLED, "", reason, now),
    )


def offer_callback(
    ticket: Ticket, now: float, *, accepted: bool, number: str, keep_for: float
) -> Ticket:
    """No operator came in the agent's time; the caller was offered a callback. Accepted, the
    ticket stays queued for ``keep_for`` more seconds (an operator calls back). The gateway
    records the offer (not accepted) when it asks, then the caller's answer: the answer keeps
    the time of the offer."""
    if ticket.kind is not Kind.ESCALATION:
        raise WrongState(f"ticket {ticket.ticket_id} is an approval: callbacks are for escalations")
    if not ticket.is_open:
        raise (Closed if ticket.is_terminal else WrongState)(
            f"ticket {ticket.ticket_id} is {ticket.state.value}: no callback to offer"
        )
    expires_at = max(ticket.expires_at, now + keep_for) if accepted else ticket.expires_at
    offered_at = ticket.callback.offered_at if ticket.callback is not None else now
    return replace(ticket, callback=Callback(accepted, number, offered_at), expires_at=expires_at)


def tick(ticket: Ticket, now: float) -> Ticket:
    """Time passes: an open ticket past ``expires_at`` expires; a lapsed claim goes back to the
    queue. Returns ``ticket`` itself when nothing changes."""
    if ticket.is_open and now >= ticket.expires_at:
        return replace(
            ticket,
            state=State.EXPIRED,
            claim_expires_at=None,
            decision=Decision(Outcome.EXPIRED, "", "", now),
        )
    if _claim_lapsed(ticket, now):
        return replace(
            ticket,
            state=State.QUEUED,
            operator_id="",
            claim_expires_at=None,
            requeues=ticket.requeues + 1,
        )
    return ticket


def next_deadline(ticket: Ticket) -> float | None:
    """When :func:`tick` may next change the ticket (None: never by time alone)."""
    if not ticket.is_open:
        return None
    if ticket.state is State.CLAIMED and ticket.claim_expires_at is not None:
        return min(ticket.claim_expires_at, ticket.expires_at)
    return ticket.expires_at


def change_of(before: Ticket | None, after: Ticket) -> str | None:
    """The event word for a transition ("requested", "claimed", "requeued", "accepted",
    "handed_back", "ended", "dismissed", "approved", "denied", "callback", "expired",
    "cancelled"), or None when only details changed."""
    if before is None:
        return "requested"
    if before.state is after.state:
        if after.callback is not None and before.callback != after.callback:
            return "callback"
        if after.state is State.CLAIMED and before.operator_id != after.operator_id:
            return "claimed"
        return None
    match after.state:
        case State.QUEUED:
            return "requeued"
        case State.CLAIMED:
            return "claimed"
        case State.TAKEN_OVER:
            return "accepted"
        case State.HANDED_BACK:
            return "handed_back"
        case State.ENDED:
            return "ended"
        case State.EXPIRED:
            return "expired"
        case State.CANCELLED:
            return "cancelled"
        case State.DECIDED:
            decision = after.decision
            if after.kind is Kind.ESCALATION:
                return "dismissed"
            return "approved" if decision and decision.outcome is Outcome.APPROVED else "denied"


def without_secrets(ticket: Ticket) -> Ticket:
    """The ticket as listed to every operator of the tenant: no operator token."""
    if ticket.escalation is None or not ticket.escalation.operator_token:
        return ticket
    return replace(ticket, escalation=replace(ticket.escalation, operator_token=""))
