"""A person approves a high-risk tool call before it runs (the hitl service's approval queue).

The turn pauses on :meth:`Approver.decide`: the request (tool, arguments, caller, call context)
is queued with ``RequestApproval``, then ``WaitDecision`` is followed until a person approves
(maybe with edited arguments) or denies, or the agent spec's timeout passes (the ticket is
withdrawn and the call is treated as denied: nothing runs without a yes).
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.peers.hitl import (
    ApprovalRequest,
    HumanLoop,
    HumanLoopError,
    Outcome,
    TicketState,
    TicketUpdate,
)
from trunkline.gateway.peers.retry import within
from trunkline.gateway.peers.types import CallInfo

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    APPROVED = "approved"
    EDITED = "edited"  # approved with other arguments
    DENIED = "denied"
    EXPIRED = "expired"  # nobody decided in time
    UNAVAILABLE = "unavailable"  # the approval could not be asked for


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    verdict: Verdict
    ticket_id: str = ""
    arguments_json: str = ""  # EDITED: the arguments to run with
    note: str = ""
    operator_id: str = ""
    wait_s: float = 0.0

    @property
    def approved(self) -> bool:
        return self.verdict in (Verdict.APPROVED, Verdict.EDITED)


class Approver(ABC):
    @abstractmethod
    async def decide(self, call: CallInfo, request: ApprovalRequest) -> ApprovalDecision:
        """A person's decision on one tool call (never raises: failures are UNAVAILABLE)."""


class HitlApprover(Approver):
    def __init__(self, hitl: HumanLoop, clock: Clock, request_timeout_s: float = 3.0) -> None:
        self.hitl = hitl
        self.clock = clock
        self.request_timeout_s = request_timeout_s

    async def decide(self, call: CallInfo, request: ApprovalRequest) -> ApprovalDecision:
        started = self.clock.now()
        try:
            ticket = await within(
                self.clock, self.request_timeout_s, self.hitl.request_approval(call, request)
            )
        except (HumanLoopError, TimeoutError) as exc:
            log.warning(
                "call %s: approval for %s not requested: %s", call.call_id, request.tool, exc
            )
            return ApprovalDecision(Verdict.UNAVAILABLE)
        try:
            last = await within(self.clock, request.timeout_s, self._final(call, ticket))
        except (HumanLoopError, TimeoutError) as exc:
            log.info("call %s: approval %s not decided in time (%s)", call.call_id, ticket, exc)
            with contextlib.suppress(HumanLoopError, TimeoutError):
                await within(
                    self.clock,
                    self.request_timeout_s,
                    self.hitl.cancel(call, ticket, "approval timed out"),
                )
            return ApprovalDecision(Verdict.EXPIRED, ticket, wait_s=self.clock.now() - started)
        return _decision(last, ticket, request, self.clock.now() - started)

    async def _final(self, call: CallInfo, ticket: str) -> TicketUpdate:
        """The ticket's terminal state (a lost stream is followed again: the ticket survives)."""
        while True:
            try:
                async for update in self.hitl.watch(call, ticket):
                    if update.state.terminal:
                        return update
            except HumanLoopError as exc:
                log.info("call %s: approval stream lost (%s); retrying", call.call_id, exc)
            await self.clock.sleep(0.2)


def _decision(
    update: TicketUpdate, ticket: str, request: ApprovalRequest, wait_s: float
) -> ApprovalDecision:
    if update.state is TicketState.DECIDED and update.outcome is Outcome.APPROVED:
        edited = update.arguments_json.strip()
        verdict = (
            Verdict.EDITED if edited and edited != request.arguments_json else Verdict.APPROVED
        )
        return ApprovalDecision(
            verdict,
            ticket,
            edited or request.arguments_json,
            update.note,
            update.operator_id,
            wait_s,
        )
    verdict = Verdict.EXPIRED if update.state is TicketState.EXPIRED else Verdict.DENIED
    if update.outcome is Outcome.EXPIRED:
        verdict = Verdict.EXPIRED
    return ApprovalDecision(verdict, ticket, "", update.note, update.operator_id, wait_s)
