"""Tool security around the executor (issue 13): fixed arguments, rate limits, secrets from the
environment, the hosts a tool may reach, and an audit event per tool call.

- **Fixed arguments**: the spec's ``fixed_arguments`` replace whatever the model sent, before
  the arguments are checked against the tool's JSON schema; what the model tried to change is
  recorded in the audit event.
- **Rate limits**: ``max_calls_per_call`` (this call) and ``max_calls_per_minute`` (the tenant,
  over the last 60 s, on this gateway replica); a call over either is not run
  (``rate_limited``) and the model is told.
- **Secrets**: header values ``${env:NAME}`` are read from the gateway's environment when the
  tool runs; they never enter the spec, the prompt (tools are described to the model by name,
  description and parameters only), the logs or what a tool's answer hands back to the model
  (any occurrence is replaced with ``[SECRET]``).
- **Hosts**: the HTTP runner calls only hosts the spec names (``allowed_hosts``, else the tool's
  own endpoint host) and never follows redirects; a spec naming another host fails at load.
- **Audit**: one ``ToolAudit`` event per decided tool call on JetStream
  (``trunkline.events.tool_audit.<tenant>.<call_id>``): who, what, arguments redacted, status.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from trunkline.agents.spec import host_allowed, url_host
from trunkline.bus import BusBase
from trunkline.bus.streams import event_subject
from trunkline.gateway.core.tools import Refuse, ToolPolicy, ToolStatus
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.types import CallInfo
from trunkline.proto.common.v1 import tool_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction.messages import redact_message

log = logging.getLogger(__name__)

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
WINDOW_S = 60.0
AUDIT_STATUSES = {
    ToolStatus.SUCCEEDED: events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
    ToolStatus.FORBIDDEN: events_pb2.TOOL_CALL_STATUS_FORBIDDEN,
    ToolStatus.NEEDS_APPROVAL: events_pb2.TOOL_CALL_STATUS_NEEDS_APPROVAL,
    ToolStatus.DENIED: events_pb2.TOOL_CALL_STATUS_DENIED,
}


class ToolSecretError(RuntimeError):
    """A header names an environment variable that is not set."""


def resolve_headers(
    tool: ToolPolicy, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The tool's headers with ``${env:NAME}`` filled in, and the secret values used."""
    env = os.environ if environ is None else environ
    secrets: list[str] = []
    headers: dict[str, str] = {}
    for name, value in tool.headers.items():

        def fill(match: re.Match[str], header: str = name) -> str:
            var = match.group(1)
            if var not in env:
                raise ToolSecretError(
                    f"{tool.name}: header {header} needs ${{env:{var}}}, which is not set"
                )
            secrets.append(env[var])
            return env[var]

        headers[name] = ENV_REF.sub(fill, value)
    return headers, tuple(s for s in secrets if len(s) >= 4)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``[SECRET]``."""
    for secret in secrets:
        text = text.replace(secret, "[SECRET]")
    return text


def fix_arguments(arguments_json: str, fixed: Mapping[str, object]) -> tuple[str, tuple[str, ...]]:
    """The arguments with the spec's fixed values in, and the keys the model tried to change.

    Arguments that are not a JSON object are returned as they are (the executor refuses them).
    """
    if not fixed:
        return arguments_json, ()
    try:
        arguments = json.loads(arguments_json or "{}")
    except json.JSONDecodeError:
        return arguments_json, ()
    if not isinstance(arguments, dict):
        return arguments_json, ()
    changed = tuple(sorted(k for k, v in fixed.items() if k in arguments and arguments[k] != v))
    arguments.update(fixed)
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False), changed


def outbound_allowed(tool: ToolPolicy, url: str) -> bool:
    """``url`` goes to a host the spec names (``allowed_hosts``, else the endpoint's own)."""
    host = url_host(url)
    if host is None:
        return False
    allowed = tool.allowed_hosts or tuple(filter(None, [url_host(tool.endpoint)]))
    return host_allowed(host, allowed)


class TenantLimits(ABC):
    """Counts tool calls per tenant and tool over the last 60 s; says whether one more fits."""

    @abstractmethod
    async def allow(self, tenant: str, tool: str, per_minute: int | None, now: float) -> bool:
        """True (and the call counted) when it is within ``per_minute``; None: no limit."""


class TenantRateLimiter(TenantLimits):
    """In this process's memory (one per gateway process); across replicas:
    :class:`trunkline.gateway.tools.redis_limits.RedisRateLimiter`."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}

    async def allow(self, tenant: str, tool: str, per_minute: int | None, now: float) -> bool:
        return self.allow_now(tenant, tool, per_minute, now)

    def allow_now(self, tenant: str, tool: str, per_minute: int | None, now: float) -> bool:
        if per_minute is None:
            return True
        hits = self._hits.setdefault((tenant, tool), deque())
        while hits and hits[0] <= now - WINDOW_S:
            hits.popleft()
        if len(hits) >= per_minute:
            return False
        hits.append(now)
        return True


class CallRateLimiter:
    """Tool calls of one call (one per call's executor)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def allows(self, tool: str, per_call: int | None) -> bool:
        return per_call is None or self._counts.get(tool, 0) < per_call

    def count(self, tool: str) -> None:
        self._counts[tool] = self._counts.get(tool, 0) + 1


async def rate_limit(
    call: CallInfo,
    tool: ToolPolicy,
    per_call: CallRateLimiter,
    per_tenant: TenantLimits,
    now: float,
) -> Refuse | None:
    """A refusal when this tool call is over one of its limits (it then counts for neither)."""
    if not per_call.allows(tool.name, tool.max_calls_per_call):
        return Refuse(
            ToolStatus.RATE_LIMITED,
            f"{tool.name} was already used {tool.max_calls_per_call} time(s) on this call, the "
            "most allowed; it was not done. Tell the caller a colleague can help further",
        )
    if not await per_tenant.allow(call.tenant, tool.name, tool.max_calls_per_minute, now):
        return Refuse(
            ToolStatus.RATE_LIMITED,
            f"{tool.name} is busy right now (over {tool.max_calls_per_minute} calls a minute); "
            "it was not done. Tell the caller to try again shortly",
        )
    per_call.count(tool.name)
    return None


@dataclass(frozen=True, slots=True)
class ToolAuditRecord:
    """One decided tool call, for the audit trail (arguments still as sent: redacted on the
    way out)."""

    call: CallInfo
    tool: str
    tool_call_id: str
    arguments_json: str
    status: ToolStatus
    executed: bool
    duration_s: float
    overridden: tuple[str, ...] = ()


class AuditSink(ABC):
    @abstractmethod
    async def record(self, audit: ToolAuditRecord) -> None:
        """Keep ``audit``; never raises (a failed audit write is logged, the call goes on)."""


def audit_event(audit: ToolAuditRecord) -> events_pb2.ToolAudit:
    """The ``ToolAudit`` event of ``audit``, redacted."""
    stamp = Timestamp()
    stamp.GetCurrentTime()
    took = Duration()
    took.FromNanoseconds(round(audit.duration_s * 1e9))
    event = events_pb2.ToolAudit(
        event_id=str(uuid.uuid4()),
        occurred_at=stamp,
        context=call_context(audit.call),
        call=tool_pb2.ToolCall(
            id=audit.tool_call_id, name=audit.tool, arguments_json=audit.arguments_json
        ),
        status=AUDIT_STATUSES.get(audit.status, events_pb2.TOOL_CALL_STATUS_FAILED),
        detail=audit.status.value,
        executed=audit.executed,
        duration=took,
        overridden_arguments=list(audit.overridden),
    )
    redact_message(event)
    return event


class BusAuditSink(AuditSink):
    """Publishes each audit on JetStream (the ``EVENTS`` stream)."""

    def __init__(self, bus: BusBase) -> None:
        self.bus = bus

    async def record(self, audit: ToolAuditRecord) -> None:
        event = audit_event(audit)
        subject = event_subject("tool_audit", audit.call.tenant, audit.call.call_id)
        try:
            await self.bus.js_publish(subject, event, msg_id=event.event_id)
        except Exception as exc:
            log.warning(
                "call %s: audit of tool %s not published: %s",
                audit.call.call_id,
                audit.tool,
                type(exc).__name__,
            )


class ListAuditSink(AuditSink):
    """Keeps audits in memory (tests, the red-team run)."""

    def __init__(self) -> None:
        self.audits: list[ToolAuditRecord] = []

    async def record(self, audit: ToolAuditRecord) -> None:
        self.audits.append(audit)


@dataclass
class ToolSecurity:
    """What one call's executor needs: its own per-call counts, the process's per-tenant
    limiter and the audit sink."""

    tenant_limits: TenantLimits
    audit: AuditSink | None = None

    def __post_init__(self) -> None:
        self.call_limits = CallRateLimiter()
