"""Tool-call decisions (DESIGN.md §2, §4), pure: may this call run, and with what result if not.

The LLM asks for a tool by name with JSON arguments. Before anything runs, the gateway checks,
in order: the turn's round limit, that the agent version declares the tool, that the caller's
role is in its ``allowed_roles``, that the arguments are a JSON object valid against the tool's
JSON schema, and whether the tool is high-risk: those need a person's approval first
(:class:`NeedsApproval`; where no approvals are available they are refused). A refusal becomes the
tool's result for the model, so it can tell the caller; only an :class:`Execute` (or an approved
:class:`NeedsApproval`) reaches the network.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped, unused-ignore]

from trunkline.gateway.core.entities import extract_entities
from trunkline.gateway.core.tool_answers import ToolAnswer

RESULT_LIMIT = 4096  # characters of a result kept for the model and the turn record


class ToolStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # ran and failed (HTTP error, timeout, bad answer)
    FORBIDDEN = "forbidden"  # the caller's role may not trigger it
    UNKNOWN = "unknown"  # the agent version declares no such tool
    INVALID = "invalid"  # arguments are not valid against the tool's schema
    NEEDS_APPROVAL = "needs_approval"  # high risk: a human must approve (not run)
    DENIED = "denied"  # high risk: a person denied it, or nobody decided in time (not run)
    ROUND_LIMIT = "round_limit"  # the turn already used its tool rounds (not run)
    RATE_LIMITED = "rate_limited"  # over its per-call or per-tenant limit (not run)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """What the executor needs to know about one declared tool."""

    name: str
    endpoint: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    allowed_roles: tuple[str, ...] = ("*",)
    high_risk: bool = False
    read_only: bool = True  # risk "low": no side effects, so it may run in speculative work
    timeout_s: float = 3.0
    # Tool security (trunkline.gateway.tools.security): the spec's fixed arguments, headers
    # (${env:NAME} resolved at call time), limits and the hosts outbound calls may reach.
    fixed_arguments: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    max_calls_per_call: int | None = None
    max_calls_per_minute: int | None = None
    allowed_hosts: tuple[str, ...] = ()
    # called by the gateway before the model when the turn's words give its required arguments
    call_when_heard: bool = False
    answers: tuple[ToolAnswer, ...] = ()  # its result in the spec's words (core/tool_answers)

    def allows(self, role: str) -> bool:
        return "*" in self.allowed_roles or role in self.allowed_roles


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``tool`` with ``arguments`` (already validated)."""

    tool: ToolPolicy
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refuse:
    """Do not run it; ``result`` goes back to the model as the tool's result."""

    status: ToolStatus
    reason: str

    @property
    def result(self) -> dict[str, Any]:
        return {"error": self.status.value, "message": self.reason}


@dataclass(frozen=True, slots=True)
class NeedsApproval:
    """Run ``tool`` with ``arguments`` only once a person approved (maybe with edited ones)."""

    tool: ToolPolicy
    arguments: dict[str, Any]


Decision = Execute | Refuse | NeedsApproval


class ToolBook:
    """The agent version's tools by name, with their argument validators compiled once."""

    def __init__(self, tools: Iterable[ToolPolicy], max_rounds: int = 2) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.tools = {tool.name: tool for tool in tools}
        self.max_rounds = max_rounds
        self._validators: dict[str, Draft202012Validator] = {}
        for tool in self.tools.values():
            try:
                Draft202012Validator.check_schema(dict(tool.parameters))
            except SchemaError as exc:
                msg = f"tool {tool.name}: invalid parameters schema: {exc.message}"
                raise ValueError(msg) from exc
            self._validators[tool.name] = Draft202012Validator(dict(tool.parameters))

    def check_edited(self, name: str, arguments_json: str) -> tuple[dict[str, Any], str]:
        """Arguments a person edited, checked like the model's: (arguments, problem or "")."""
        arguments, problem = _parse_arguments(arguments_json)
        if problem:
            return {}, f"edited arguments for {name} {problem}"
        errors = sorted(self._validators[name].iter_errors(arguments), key=lambda e: e.path)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "arguments"
            return {}, f"invalid edited arguments for {name}: {where}: {errors[0].message}"
        return arguments, ""

    def heard_calls(self, text: str, role: str) -> list[tuple[str, str]]:
        """The ``call_when_heard`` tools that ``text`` (one caller turn) gives every required
        argument of (an account number after "account" or "number"), with those arguments as
        JSON: ``(name, arguments_json)``. Only calls :meth:`decide` would run at once (the
        caller's role allowed, the arguments valid, no approval needed)."""
        calls: list[tuple[str, str]] = []
        for tool in self.tools.values():
            required = tuple(tool.parameters.get("required", ()))
            if not tool.call_when_heard or not required or tool.high_risk:
                continue
            heard = extract_entities(text, required)  # never a card's digits (entities.py)
            if len(heard) < len(required):
                continue
            arguments = json.dumps({name: heard[name] for name in required})
            if isinstance(self.decide(tool.name, arguments, role, 0), Execute):
                calls.append((tool.name, arguments))
        return calls

    def may_continue(self, rounds_done: int) -> bool:
        """True while another generation round with tool results is allowed."""
        return rounds_done < self.max_rounds

    def decide(
        self,
        name: str,
        arguments_json: str,
        role: str,
        rounds_done: int,
        *,
        approvals: bool = False,
    ) -> Decision:
        """What to do with one tool call of the ``rounds_done``-th tool round (0-based);
        ``approvals``: a person can be asked to approve a high-risk call."""
        if not self.may_continue(rounds_done):
            return Refuse(
                ToolStatus.ROUND_LIMIT,
                f"this turn already used its {self.max_rounds} tool round(s); answer the "
                "caller with what you know",
            )
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return Refuse(ToolStatus.UNKNOWN, f"there is no tool {name!r} (tools: {known})")
        if not tool.allows(role):
            return Refuse(
                ToolStatus.FORBIDDEN,
                f"a caller with role {role!r} may not use {name}; tell the caller you cannot "
                "do that on this call",
            )
        arguments, problem = _parse_arguments(arguments_json)
        if problem:
            return Refuse(ToolStatus.INVALID, f"arguments for {name} {problem}")
        errors = sorted(self._validators[name].iter_errors(arguments), key=lambda e: e.path)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "arguments"
            return Refuse(ToolStatus.INVALID, f"invalid arguments for {name}: {where}: "
                          f"{errors[0].message}")  # fmt: skip
        if tool.high_risk and approvals:
            return NeedsApproval(tool, arguments)
        if tool.high_risk:
            return Refuse(
                ToolStatus.NEEDS_APPROVAL,
                f"{name} needs human approval, and approvals are not available yet (a later "
                "release adds them): it was not done; offer to connect the caller with a "
                "colleague",
            )
        return Execute(tool, arguments)


def _parse_arguments(text: str) -> tuple[dict[str, Any], str]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return {}, f"are not valid JSON: {exc.msg}"
    if not isinstance(value, dict):
        return {}, f"must be a JSON object, got {type(value).__name__}"
    return value, ""


def result_json(value: Any) -> str:
    """A tool result as compact JSON text for the model, cut to :data:`RESULT_LIMIT`."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text[:RESULT_LIMIT]
