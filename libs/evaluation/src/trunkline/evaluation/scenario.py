"""Conversation scenarios as data: what the caller says and what the agent must do. Pure.

A scenario file (YAML) holds defaults and a list of scenarios::

    agent: acme-dental          # defaults for every scenario below (each may override them)
    tenant: acme                # omitted: the tenant of the stack the eval runs against
    caller_role: caller
    latency_ms: 3000            # budget per turn: caller's last word -> first agent audio
    scenarios:
      - name: hours-saturday
        tags: [hours, smoke]
        turns:
          - say: When are you open on Saturday?      # synthesised by the stack's TTS
            must_contain: [9 am, 1 pm]               # normalised: "nine a.m." counts
            must_not_contain: [6 pm]
            not_actions: [deflection]
          - wav: clips/account.wav                   # or recorded speech (relative path)
            text: Please look up account 441729      # its words, the reference for WER
            actions:
              - tool: lookup_account
                arguments: {account_id: "441729"}
          - say: Thanks, goodbye.
            actions: [hang_up]

``must_contain`` items are phrases; an item that is a list is met by any one of its phrases.
``actions``: ``deflection``, ``escalation``, ``hang_up``, ``{tool: NAME, arguments: {..},
status: succeeded}``, ``{reply_source: NAME}``. ``not_actions`` name what must not happen.
Every problem is reported as ``file:line: message``, all of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from trunkline.evaluation.yamlmarks import MarkedList, MarkedMap, YamlError, load_marked

REPLY_SOURCES = (
    "llm", "knowledge", "cache", "deflection", "goodbye", "small_talk", "repeat", "fallback",
    "greeting", "handoff", "callback", "tool", "in_domain",
)  # fmt: skip
"""``ReplySource`` names of ``events/v1`` (lower case, without the prefix)."""

TOOL_STATUSES = (
    "succeeded", "failed", "forbidden", "denied", "dry_run", "needs_approval",
)  # fmt: skip
"""``ToolCallStatus`` names of ``events/v1`` (lower case, without the prefix)."""

DEFAULT_LATENCY_MS = 3000.0
DEFAULT_PAUSE_MS = 400.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}$")
_FILE_KEYS = {"agent", "tenant", "caller_role", "latency_ms", "pause_ms", "tags", "scenarios"}
_SCENARIO_KEYS = {
    "name", "description", "agent", "tenant", "caller_role", "latency_ms", "pause_ms", "tags",
    "turns",
}  # fmt: skip
_TURN_KEYS = {
    "say", "wav", "text", "must_contain", "must_not_contain", "actions", "not_actions",
    "latency_ms", "pause_ms",
}  # fmt: skip


class ScenarioError(ValueError):
    """Scenarios that cannot be used; ``problems`` are ``file:line: message`` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ActionKind(StrEnum):
    TOOL = "tool"
    DEFLECTION = "deflection"
    ESCALATION = "escalation"
    HANG_UP = "hang_up"
    REPLY_SOURCE = "reply_source"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    where: Where
    tool: str = ""
    arguments: tuple[tuple[str, str], ...] = ()  # expected arguments, values as text
    status: str = "succeeded"  # the tool call's expected status
    reply_source: str = ""

    def describe(self) -> str:
        if self.kind is ActionKind.TOOL:
            args = ", ".join(f"{k}={v}" for k, v in self.arguments)
            return f"tool {self.tool}({args})"
        if self.kind is ActionKind.REPLY_SOURCE:
            return f"reply_source {self.reply_source}"
        return self.kind.value


@dataclass(frozen=True, slots=True)
class ScenarioTurn:
    where: Where
    text: str | None  # what is said: synthesised, or the words of ``wav`` (WER reference)
    wav: Path | None = None
    must_contain: tuple[tuple[str, ...], ...] = ()  # each: any one of these phrases
    must_not_contain: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    not_actions: tuple[Action, ...] = ()
    latency_ms: float = DEFAULT_LATENCY_MS
    pause_ms: float = DEFAULT_PAUSE_MS

    @property
    def source(self) -> str:
        return "wav" if self.wav is not None else "tts"

    def expects(self, kind: ActionKind) -> bool:
        return any(a.kind is kind for a in self.actions)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    agent: str
    where: Where
    turns: tuple[ScenarioTurn, ...]
    tenant: str | None = None  # None: the stack's tenant
    caller_role: str = "caller"
    description: str = ""
    tags: tuple[str, ...] = field(default=())


# -- parsing ------------------------------------------------------------------------------------


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, line: int, message: str) -> None:
        self.items.append(f"{self.file}:{line}: {message}")


def _line(node: Any, key: str | int | None = None, default: int = 0) -> int:
    if isinstance(node, MarkedMap) and isinstance(key, str) and key in node.lines:
        return node.lines[key]
    if isinstance(node, MarkedList) and isinstance(key, int) and key < len(node.lines):
        return node.lines[key]
    return getattr(node, "line", default)


def _text(value: Any, where: int, what: str, problems: _Problems) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        problems.add(where, f"{what} must be text, got {value!r}")
        return None
    text = str(value).strip()
    if not text:
        problems.add(where, f"{what} must not be empty")
        return None
    return text


def _number(value: Any, where: int, what: str, problems: _Problems) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.add(where, f"{what} must be a number >= 0, got {value!r}")
        return None
    return float(value)


def _texts(value: Any, where: int, what: str, problems: _Problems) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        problems.add(where, f"{what} must be a list of phrases")
        return []
    out = []
    for i, item in enumerate(value):
        text = _text(item, _line(value, i, where), f"{what} item", problems)
        if text is not None:
            out.append(text)
    return out


def _unknown(node: MarkedMap, allowed: set[str], what: str, problems: _Problems) -> None:
    for key in sorted(set(node) - allowed):
        problems.add(_line(node, key), f"unknown {what} key {key!r} (allowed: "
                     f"{', '.join(sorted(allowed))})")  # fmt: skip


def _action(item: Any, line: int, problems: _Problems) -> Action | None:
    where = Where(problems.file, line)
    if isinstance(item, str):
        name = item.strip().replace("-", "_")
        simple = {k.value: k for k in (ActionKind.DEFLECTION, ActionKind.ESCALATION,
                                        ActionKind.HANG_UP)}  # fmt: skip
        if name in simple:
            return Action(simple[name], where)
        problems.add(line, f"unknown action {item!r} (deflection, escalation, hang_up, "
                     "{tool: NAME, arguments: {...}} or {reply_source: NAME})")  # fmt: skip
        return None
    if not isinstance(item, MarkedMap):
        problems.add(line, f"an action must be a name or a mapping, got {item!r}")
        return None
    if "tool" in item:
        _unknown(item, {"tool", "arguments", "status"}, "tool action", problems)
        tool = _text(item["tool"], _line(item, "tool"), "tool", problems)
        arguments = item.get("arguments", {})
        if not isinstance(arguments, dict):
            problems.add(_line(item, "arguments"), "arguments must be a mapping")
            arguments = {}
        status = str(item.get("status", "succeeded")).strip().lower()
        if status not in TOOL_STATUSES:
            problems.add(_line(item, "status"), f"unknown tool status {status!r} "
                         f"(one of {', '.join(TOOL_STATUSES)})")  # fmt: skip
        if tool is None:
            return None
        args = tuple(sorted((str(k), str(v)) for k, v in arguments.items()))
        return Action(ActionKind.TOOL, where, tool=tool, arguments=args, status=status)
    if "reply_source" in item:
        _unknown(item, {"reply_source"}, "reply_source action", problems)
        source = str(item["reply_source"]).strip().lower()
        if source not in REPLY_SOURCES:
            problems.add(_line(item, "reply_source"), f"unknown reply source {source!r} "
                         f"(one of {', '.join(REPLY_SOURCES)})")  # fmt: skip
            return None
        return Action(ActionKind.REPLY_SOURCE, where, reply_source=source)
    problems.add(line, "an action mapping needs 'tool' or 'reply_source'")
    return None


def _actions(node: MarkedMap, key: str, problems: _Problems) -> tuple[Action, ...]:
    value = node.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        value_list = MarkedList([value])
        value_list.line, value_list.lines = _line(node, key), [_line(node, key)]
        value = value_list
    found = (_action(item, _line(value, i, _line(node, key)), problems)
             for i, item in enumerate(value))  # fmt: skip
    return tuple(a for a in found if a is not None)


def _turn(node: Any, line: int, defaults: Mapping[str, Any], base: Path,
          problems: _Problems) -> ScenarioTurn | None:  # fmt: skip
    if isinstance(node, str):
        node_map = MarkedMap(say=node)
        node_map.line, node_map.lines = line, {"say": line}
        node = node_map
    if not isinstance(node, MarkedMap):
        problems.add(line, f"a turn must be a mapping (or the text to say), got {node!r}")
        return None
    _unknown(node, _TURN_KEYS, "turn", problems)
    where = Where(problems.file, node.line)
    if "say" in node and "wav" in node:
        problems.add(node.line, "a turn has 'say' or 'wav', not both")
    if "say" in node and "text" in node:
        problems.add(_line(node, "text"), "'text' goes with 'wav' (the words of the recording)")
    text: str | None = None
    wav: Path | None = None
    if "say" in node:
        text = _text(node["say"], _line(node, "say"), "say", problems)
    elif "wav" in node:
        name = _text(node["wav"], _line(node, "wav"), "wav", problems)
        if name is not None:
            wav = (base / name).resolve()
            if not wav.is_file():
                problems.add(_line(node, "wav"), f"no WAV file {wav}")
        if "text" in node:
            text = _text(node["text"], _line(node, "text"), "text", problems)
    else:
        problems.add(node.line, "a turn needs 'say' (text to synthesise) or 'wav' (a recording)")
    contain: list[tuple[str, ...]] = []
    raw = node.get("must_contain", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        problems.add(_line(node, "must_contain"), "must_contain must be a list")
        raw = []
    for i, item in enumerate(raw):
        where_i = _line(raw, i, _line(node, "must_contain"))
        if isinstance(item, list):
            options = _texts(item, where_i, "must_contain", problems)
        else:
            one = _text(item, where_i, "must_contain item", problems)
            options = [] if one is None else [one]
        if options:
            contain.append(tuple(options))
    latency = defaults["latency_ms"]
    if "latency_ms" in node:
        latency = _number(node["latency_ms"], _line(node, "latency_ms"), "latency_ms", problems)
    pause = defaults["pause_ms"]
    if "pause_ms" in node:
        pause = _number(node["pause_ms"], _line(node, "pause_ms"), "pause_ms", problems)
    not_contain = node.get("must_not_contain", [])
    return ScenarioTurn(
        where=where,
        text=text,
        wav=wav,
        must_contain=tuple(contain),
        must_not_contain=tuple(
            _texts(not_contain, _line(node, "must_not_contain"), "must_not_contain", problems)
        ),
        actions=_actions(node, "actions", problems),
        not_actions=_actions(node, "not_actions", problems),
        latency_ms=DEFAULT_LATENCY_MS if latency is None else latency,
        pause_ms=DEFAULT_PAUSE_MS if pause is None else pause,
    )


def _settings(node: MarkedMap, inherited: Mapping[str, Any], problems: _Problems) -> dict[str, Any]:
    out = dict(inherited)
    for key in ("agent", "tenant", "caller_role"):
        if key in node:
            out[key] = _text(node[key], _line(node, key), key, problems)
    for key in ("latency_ms", "pause_ms"):
        if key in node:
            value = _number(node[key], _line(node, key), key, problems)
            out[key] = inherited[key] if value is None else value
    if "tags" in node:
        out["tags"] = (*inherited.get("tags", ()), *_texts(node["tags"], _line(node, "tags"),
                                                            "tags", problems))  # fmt: skip
    return out


def _scenario(node: Any, line: int, defaults: Mapping[str, Any], base: Path,
              problems: _Problems) -> Scenario | None:  # fmt: skip
    if not isinstance(node, MarkedMap):
        problems.add(line, f"a scenario must be a mapping, got {node!r}")
        return None
    _unknown(node, _SCENARIO_KEYS, "scenario", problems)
    name = _text(node.get("name"), _line(node, "name", node.line), "name", problems)
    if name is not None and not _NAME.match(name):
        problems.add(_line(node, "name"), f"scenario name {name!r}: lower case letters, digits, "
                     "'-', '_' and '.'")  # fmt: skip
    settings = _settings(node, defaults, problems)
    if not settings.get("agent"):
        problems.add(node.line, "no agent: give 'agent' in the scenario or at the file's top")
    turns_node = node.get("turns")
    turns: list[ScenarioTurn] = []
    if not isinstance(turns_node, list) or not turns_node:
        problems.add(_line(node, "turns", node.line), "a scenario needs a non-empty list 'turns'")
    else:
        for i, item in enumerate(turns_node):
            turn = _turn(item, _line(turns_node, i), settings, base, problems)
            if turn is not None:
                turns.append(turn)
    description = node.get("description", "")
    if name is None or not settings.get("agent") or not turns:
        return None
    return Scenario(
        name=name,
        agent=settings["agent"],
        where=Where(problems.file, node.line),
        turns=tuple(turns),
        tenant=settings.get("tenant"),
        caller_role=settings.get("caller_role") or "caller",
        description=str(description or "").strip(),
        tags=tuple(dict.fromkeys(settings.get("tags", ()))),
    )


def parse_scenarios(text: str, file: str, base: Path | None = None) -> list[Scenario]:
    """The scenarios of one file's text; WAV paths are relative to ``base`` (default: cwd).
    Raises :class:`ScenarioError` listing every problem with its line."""
    problems = _Problems(file)
    try:
        data = load_marked(text)
    except YamlError as exc:
        raise ScenarioError([f"{file}:{exc.line}: {exc}"]) from None
    if not isinstance(data, MarkedMap) or "scenarios" not in data:
        raise ScenarioError([f"{file}:1: expected a mapping with a 'scenarios' list"])
    _unknown(data, _FILE_KEYS, "file", problems)
    base_defaults: dict[str, Any] = {
        "agent": None, "tenant": None, "caller_role": "caller", "tags": (),
        "latency_ms": DEFAULT_LATENCY_MS, "pause_ms": DEFAULT_PAUSE_MS,
    }  # fmt: skip
    defaults = _settings(data, base_defaults, problems)
    items = data["scenarios"]
    scenarios: list[Scenario] = []
    if not isinstance(items, list) or not items:
        problems.add(_line(data, "scenarios"), "'scenarios' must be a non-empty list")
    else:
        for i, item in enumerate(items):
            found = _scenario(item, _line(items, i), defaults, base or Path.cwd(), problems)
            if found is not None:
                scenarios.append(found)
    if problems.items:
        raise ScenarioError(problems.items)
    return scenarios


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and every ``*.yaml``/``*.yml`` under the folders named, sorted.
    Hidden entries are skipped: a mounted Kubernetes ConfigMap holds each file again inside its
    ``..<timestamp>`` folder (the visible names are links into it)."""
    found: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p
                for p in [*path.rglob("*.yaml"), *path.rglob("*.yml")]
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not inside:
                missing.append(f"{path}: no scenario files (*.yaml) in this folder")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            missing.append(f"{path}: no such file or folder")
    if missing:
        raise ScenarioError(missing)
    return list(dict.fromkeys(found))


def load_scenarios(paths: Iterable[Path]) -> list[Scenario]:
    """Every scenario of the files (folders: their YAML files), in file order. Names must be
    unique; all problems of all files are reported together."""
    problems: list[str] = []
    scenarios: list[Scenario] = []
    for file in scenario_files(paths):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}:0: cannot read: {exc}")
            continue
        try:
            scenarios.extend(parse_scenarios(text, str(file), file.parent))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    seen: dict[str, Where] = {}
    for s in scenarios:
        if s.name in seen:
            problems.append(f"{s.where}: scenario name {s.name!r} already used at {seen[s.name]}")
        seen.setdefault(s.name, s.where)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def check_references(
    scenarios: Sequence[Scenario],
    agents: Collection[str],
    tenants: Mapping[str, Collection[str]] | None = None,
    default_tenant: str | None = None,
) -> None:
    """Every scenario names a known agent, and (when ``tenants`` is given: tenant -> agents it
    admits) a known tenant that admits it. Raises :class:`ScenarioError` naming each one."""
    problems = []
    for s in scenarios:
        if s.agent not in agents:
            problems.append(f"{s.where}: scenario {s.name!r}: unknown agent {s.agent!r} "
                            f"(known: {', '.join(sorted(agents)) or 'none'})")  # fmt: skip
            continue
        if tenants is None:
            continue
        tenant = s.tenant or default_tenant
        if tenant is None:
            problems.append(f"{s.where}: scenario {s.name!r}: no tenant given and no default")
        elif tenant not in tenants:
            problems.append(f"{s.where}: scenario {s.name!r}: unknown tenant {tenant!r} "
                            f"(the stack has: {', '.join(sorted(tenants)) or 'none'})")  # fmt: skip
        elif s.agent not in tenants[tenant]:
            problems.append(f"{s.where}: scenario {s.name!r}: tenant {tenant!r} does not serve "
                            f"agent {s.agent!r}")  # fmt: skip
    if problems:
        raise ScenarioError(problems)


def select(
    scenarios: Sequence[Scenario],
    *,
    agents: Collection[str] = (),
    tags: Collection[str] = (),
    names: Collection[str] = (),
) -> list[Scenario]:
    """The scenarios of any of ``agents``, with any of ``tags``, named in ``names`` (each filter
    empty: no filtering). A name that matches nothing is an error."""
    unknown = sorted(set(names) - {s.name for s in scenarios})
    if unknown:
        raise ScenarioError([f"no scenario named {n!r}" for n in unknown])
    return [
        s
        for s in scenarios
        if (not agents or s.agent in agents)
        and (not tags or set(tags) & set(s.tags))
        and (not names or s.name in names)
    ]
