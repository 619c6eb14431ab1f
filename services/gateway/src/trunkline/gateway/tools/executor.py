"""Runs the LLM's tool calls: the pure decision first, then (only if allowed) the runner.

Every call gets its own ``tool`` span (name, status, duration) under the turn span, a count in
``gateway.tool.calls`` by tool and status, and a :class:`ToolRecord` for the turn's event. The
result text always goes back to the model, a refusal or failure included, so it can tell the
caller what happened instead of inventing an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, Tracer

from trunkline.agents.spec import url_host
from trunkline.gateway.approvals import ApprovalDecision, Approver, Verdict
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.tool_answers import ToolAnswer
from trunkline.gateway.core.tools import (
    Execute,
    NeedsApproval,
    Refuse,
    ToolBook,
    ToolPolicy,
    ToolStatus,
    result_json,
)
from trunkline.gateway.metrics import GatewayMetrics, version_labels
from trunkline.gateway.peers.hitl import ApprovalRequest
from trunkline.gateway.peers.types import CallInfo, ToolCallRequested
from trunkline.gateway.profile import AgentProfile
from trunkline.gateway.records import ToolRecord
from trunkline.gateway.tools.base import ToolRunError, ToolRunner
from trunkline.gateway.tools.security import (
    ToolAuditRecord,
    ToolSecurity,
    fix_arguments,
    rate_limit,
)

log = logging.getLogger(__name__)


def tool_book(profile: AgentProfile, max_rounds: int = 2) -> ToolBook:
    """The agent version's tools as the executor sees them."""
    return ToolBook(
        (
            ToolPolicy(
                name=tool.name,
                endpoint=tool.endpoint,
                parameters=tool.parameters,
                allowed_roles=tool.allowed_roles,
                high_risk=tool.risk == "high",
                read_only=tool.risk == "low",
                timeout_s=tool.timeout_s,
                fixed_arguments=tool.fixed_arguments,
                headers=tool.headers,
                max_calls_per_call=tool.max_calls_per_call,
                max_calls_per_minute=tool.max_calls_per_minute,
                call_when_heard=tool.call_when_heard,
                answers=tuple(ToolAnswer(a.say, a.when) for a in tool.answers),
                allowed_hosts=profile.allowed_hosts
                or tuple(filter(None, [url_host(tool.endpoint)])),
            )
            for tool in profile.tools
        ),
        max_rounds=max_rounds,
    )


class ToolExecutor:
    def __init__(
        self,
        book: ToolBook,
        runner: ToolRunner,
        *,
        clock: Clock,
        tracer: Tracer,
        metrics: GatewayMetrics | None = None,
        approver: Approver | None = None,
        approval_timeout_s: float = 30.0,
        approval_line: str = "One moment while I confirm that.",
        security: ToolSecurity | None = None,
    ) -> None:
        """``approver``: a person approves high-risk tools (None: they are refused).
        ``security``: rate limits and the audit trail (``tools/security.py``)."""
        self.book = book
        self.runner = runner
        self.clock = clock
        self.tracer = tracer
        self.metrics = metrics
        self.approver = approver
        self.approval_timeout_s = approval_timeout_s
        self.approval_line = approval_line
        self.security = security

    def needs_approval(self, calls: list[ToolCallRequested], call: CallInfo) -> bool:
        """Whether one of the calls will wait for a person (the caller is told first)."""
        if self.approver is None:
            return False
        for request in calls:
            tool = self.book.tools.get(request.name)
            if tool is not None and tool.high_risk and tool.allows(call.caller_role):
                return True
        return False

    def may_continue(self, rounds_done: int) -> bool:
        return self.book.may_continue(rounds_done)

    async def execute(
        self,
        call: CallInfo,
        request: ToolCallRequested,
        rounds_done: int,
        committed: Callable[[], Awaitable[None]] | None = None,
    ) -> ToolRecord:
        """Decide, maybe run, and record one tool call of round ``rounds_done`` (0-based).

        ``committed`` (speculative work) is awaited before a tool with side effects runs: a
        booking is made only once the caller has finished the turn, never for an utterance
        the caller then goes on with (the work is cancelled while it waits)."""
        declared = self.book.tools.get(request.name)
        fixed = declared.fixed_arguments if declared is not None else {}
        arguments_json, overridden = fix_arguments(request.arguments_json, fixed)
        decision = self.book.decide(
            request.name,
            arguments_json,
            call.caller_role,
            rounds_done,
            approvals=self.approver is not None,
        )
        if self.security is not None and isinstance(decision, Execute | NeedsApproval):
            security = self.security
            limited = await rate_limit(
                call, decision.tool, security.call_limits, security.tenant_limits, self.clock.now()
            )
            decision = limited or decision
        side_effects = isinstance(decision, Execute | NeedsApproval) and not decision.tool.read_only
        if committed is not None and side_effects:
            await committed()
        with self.tracer.start_as_current_span("tool") as span:
            span.set_attribute("tool.name", request.name)
            span.set_attribute("tool.call_id", request.call_id)
            span.set_attribute("tool.round", rounds_done)
            started = self.clock.now()
            match decision:
                case Refuse():
                    status, text = decision.status, result_json(decision.result)
                    self._log_refusal(call, request, decision)
                case Execute(tool=tool, arguments=arguments):
                    status, text = await self._run(call, tool, arguments)
                case NeedsApproval(tool=tool):
                    status, text, arguments_json = await self._approve_and_run(
                        call, request, tool, arguments_json
                    )
            took = self.clock.now() - started
            span.set_attribute("tool.status", status.value)
            executed = isinstance(decision, Execute) or (
                isinstance(decision, NeedsApproval)
                and status is not ToolStatus.DENIED
                and status is not ToolStatus.NEEDS_APPROVAL
            )
            span.set_attribute("tool.executed", executed)
            span.set_attribute("tool.duration_ms", round(took * 1000, 1))
            if status is not ToolStatus.SUCCEEDED:
                span.set_status(Status(StatusCode.ERROR, status.value))
        if self.metrics is not None:
            self.metrics.tool_calls.add(1, {"tool": request.name, "status": status.value})
            if executed:  # labelled by version, as every stage (the rollout splits by it)
                labels = version_labels(call.agent, call.agent_version)
                self.metrics.observe_stage("tool", took, labels)
        if self.security is not None and self.security.audit is not None:
            await self.security.audit.record(
                ToolAuditRecord(
                    call, request.name, request.call_id, arguments_json, status, executed,
                    took if executed else 0.0, overridden,
                )
            )  # fmt: skip
        return ToolRecord(
            call_id=request.call_id,
            name=request.name,
            arguments_json=arguments_json,
            status=status,
            result_json=text,
            duration_s=took if executed else 0.0,
        )

    async def _approve_and_run(
        self,
        call: CallInfo,
        request: ToolCallRequested,
        tool: ToolPolicy,
        arguments_json: str,
    ) -> tuple[ToolStatus, str, str]:
        """Ask a person, then run (with their arguments) or say honestly why not."""
        assert self.approver is not None
        ask = ApprovalRequest(
            tool_call_id=request.call_id,
            tool=tool.name,
            arguments_json=arguments_json,
            justification=f"the caller's request led the agent to call {tool.name}",
            timeout_s=self.approval_timeout_s,
            request_id=f"{call.call_id}-{request.call_id}",
        )
        decision = await self.approver.decide(call, ask)
        self._trace_approval(tool.name, decision)
        if decision.approved:
            edited, _ = fix_arguments(decision.arguments_json, tool.fixed_arguments)
            arguments, problem = self.book.check_edited(tool.name, edited)
            if problem:
                result = {"error": "denied", "message": f"{problem}; it was not done"}
                return ToolStatus.DENIED, result_json(result), edited
            status, text = await self._run(call, tool, arguments)
            return status, text, edited
        reasons = {
            Verdict.DENIED: "a colleague did not approve it",
            Verdict.EXPIRED: "no colleague could approve it in time",
            Verdict.UNAVAILABLE: "approval could not be requested right now",
        }
        message = f"{tool.name} was not done: {reasons[decision.verdict]}"
        if decision.note:
            message += f" (note: {decision.note})"
        message += ". Tell the caller honestly that it was not done."
        status = (
            ToolStatus.NEEDS_APPROVAL
            if decision.verdict is Verdict.UNAVAILABLE
            else ToolStatus.DENIED
        )
        result = {"error": status.value, "message": message}
        return status, result_json(result), arguments_json

    def _trace_approval(self, tool: str, decision: ApprovalDecision) -> None:
        trace.get_current_span().add_event(
            "approval",
            {
                "tool.name": tool,
                "approval.verdict": decision.verdict.value,
                "approval.ticket_id": decision.ticket_id,
                "approval.operator_id": decision.operator_id,
                "approval.wait_ms": round(decision.wait_s * 1000, 1),
            },
        )
        if self.metrics is not None:
            self.metrics.approvals.add(1, {"tool": tool, "outcome": decision.verdict.value})

    async def _run(
        self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, object]
    ) -> tuple[ToolStatus, str]:
        try:
            result = await self.runner.run(call, tool, arguments)
        except ToolRunError as exc:
            log.warning("call %s: tool %s failed: %s", call.call_id, tool.name, exc)
            return ToolStatus.FAILED, result_json({"error": "failed", "message": str(exc)})
        return ToolStatus.SUCCEEDED, result_json(result)

    @staticmethod
    def _log_refusal(call: CallInfo, request: ToolCallRequested, refusal: Refuse) -> None:
        if refusal.status is ToolStatus.NEEDS_APPROVAL:
            log.warning(
                "call %s: tool %s is high-risk and needs human approval; approvals (hitl) are "
                "not built yet, so it was not run",
                call.call_id,
                request.name,
            )
        else:
            log.warning(
                "call %s: tool %s refused (%s): %s",
                call.call_id,
                request.name,
                refusal.status.value,
                refusal.reason,
            )
