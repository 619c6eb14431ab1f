"""Runs the LLM's tool calls: the pure decision first, then (only if allowed) the runner.

Every call gets its own ``tool`` span (name, status, duration) under the turn span, a count in
``gateway.tool.calls`` by tool and status, and a :class:`ToolRecord` for the turn's event. The
result text always goes back to the model, a refusal or failure included, so it can tell the
caller what happened instead of inventing an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from opentelemetry.trace import Status, StatusCode, Tracer

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.tools import (
    Execute,
    Refuse,
    ToolBook,
    ToolPolicy,
    ToolStatus,
    result_json,
)
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.types import CallInfo, ToolCallRequested
from trunkline.gateway.profile import AgentProfile
from trunkline.gateway.records import ToolRecord
from trunkline.gateway.tools.base import ToolRunError, ToolRunner

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
    ) -> None:
        self.book = book
        self.runner = runner
        self.clock = clock
        self.tracer = tracer
        self.metrics = metrics

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
        decision = self.book.decide(
            request.name, request.arguments_json, call.caller_role, rounds_done
        )
        if committed is not None and isinstance(decision, Execute) and not decision.tool.read_only:
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
            took = self.clock.now() - started
            span.set_attribute("tool.status", status.value)
            span.set_attribute("tool.executed", isinstance(decision, Execute))
            span.set_attribute("tool.duration_ms", round(took * 1000, 1))
            if status is not ToolStatus.SUCCEEDED:
                span.set_status(Status(StatusCode.ERROR, status.value))
        if self.metrics is not None:
            self.metrics.tool_calls.add(1, {"tool": request.name, "status": status.value})
            if isinstance(decision, Execute):
                self.metrics.observe_stage("tool", took)
        return ToolRecord(
            call_id=request.call_id,
            name=request.name,
            arguments_json=request.arguments_json,
            status=status,
            result_json=text,
            duration_s=took if isinstance(decision, Execute) else 0.0,
        )

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
