"""The one way to load agents: YAML files locally, ``VoiceAgent`` resources in a cluster.

Locally ``load_agents(path)`` reads one file or every ``*.yaml``/``*.yml`` of a folder. A file
holds either a bare agent spec or a ``VoiceAgent`` manifest (its ``spec`` is the agent spec), so
the same file works with ``kubectl apply -f`` and in development. Every bad file is an error:
one :class:`AgentSpecError` lists all of them, each problem with its file and line, and nothing
is half-loaded. Two files defining the same agent name are an error too.

In a cluster, :func:`spec_from_resource` turns a ``VoiceAgent`` object read from the API into the
same :class:`AgentSpec` (the operator validates with it and records Validated=False on failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trunkline.agents.spec import AgentSpec, AgentSpecError, _describe, parse_agent_spec

GROUP = "trunkline.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VoiceAgent"
PLURAL = "voiceagents"


def agent_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``*.yaml``/``*.yml`` files directly in it, sorted by name."""
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    if path.is_file():
        return [path]
    raise AgentSpecError(f"{path}: no such agent file or folder")


def _unwrap_manifest(text: str, source: str) -> str:
    """The agent spec's YAML text; a ``VoiceAgent`` manifest is reduced to its ``spec``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentSpecError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "kind" not in data:
        return text
    if data.get("kind") != KIND or data.get("apiVersion") != API_VERSION:
        raise AgentSpecError(
            f"{source}: a manifest here must be kind {KIND} apiVersion {API_VERSION}, "
            f"not kind {data.get('kind')!r} apiVersion {data.get('apiVersion')!r}"
        )
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise AgentSpecError(f"{source}: the {KIND} has no spec mapping")
    return yaml.safe_dump(spec, sort_keys=False)


def load_agent_file(path: Path) -> AgentSpec:
    """One agent from a YAML file: a bare spec or a ``VoiceAgent`` manifest."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentSpecError(f"{path}: cannot read agent spec: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentSpecError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, dict) and "kind" in data:
        # Line numbers of a manifest's problems would point into the re-dumped spec: keep the
        # key path only, with the file's name.
        return parse_agent_spec(_unwrap_manifest(text, str(path)), source=f"{path} (spec)")
    return parse_agent_spec(text, source=str(path))


def load_agents(path: Path) -> dict[str, AgentSpec]:
    """Agents by name from one file or a folder; every problem of every file in one error."""
    specs: dict[str, AgentSpec] = {}
    where: dict[str, Path] = {}
    problems: list[str] = []
    for file in agent_files(path):
        try:
            spec = load_agent_file(file)
        except AgentSpecError as exc:
            problems.append(str(exc))
            continue
        if spec.name in specs:
            problems.append(f"{file}: agent {spec.name!r} is already defined in {where[spec.name]}")
            continue
        specs[spec.name] = spec
        where[spec.name] = file
    if problems:
        raise AgentSpecError("\n".join(problems))
    return specs


def spec_from_resource(resource: Mapping[str, Any]) -> AgentSpec:
    """The agent spec of a ``VoiceAgent`` object (a dict as the API returns it)."""
    metadata = resource.get("metadata") or {}
    source = f"{KIND} {metadata.get('namespace', '')}/{metadata.get('name', '?')}".replace(
        " /", " "
    )
    spec = resource.get("spec")
    if not isinstance(spec, Mapping):
        raise AgentSpecError(f"{source}: no spec")
    try:
        return AgentSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise AgentSpecError(f"{source}: invalid agent spec:\n{_describe(exc)}") from exc
