"""What an agent may say: its spec, its knowledge and its sample CRM, read from the agents folder.

Layout (as ``trunkline stack up`` serves it)::

    agents/<file>.yaml                      the agent spec (its ``name`` is the agent)
    agents/<name>/knowledge/<kb>/*.md       knowledge bases (those in retrieval.data_sources)
    agents/<name>/crm.json                  sample CRM accounts (optional)

Every sentence of the spec counts as a source (prompt, greeting, messages of any policy), so a
new spec field is read without a change here; its settings (numbers, names, URLs) do not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trunkline.agents import AgentSpecError, load_agent_spec

KNOWLEDGE = "knowledge"
CRM_FILE = "crm.json"
TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".csv", ".json")


class SourcesError(RuntimeError):
    """The agents folder cannot be read; the text says which file and why."""


@dataclass(frozen=True, slots=True)
class AgentSources:
    name: str
    spec_file: Path
    texts: tuple[str, ...]  # spec strings and knowledge documents
    records: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # account id -> values
    voice: str = ""  # the agent's TTS voice (a simulated caller picks another)
    filler: str = ""  # what the agent says while a slow turn works ("One moment, please.")


def leaves(value: Any) -> list[str]:
    """Every scalar in a JSON/YAML value, as text (mapping keys left out)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in leaves(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in leaves(v)]
    if value is None or isinstance(value, bool):
        return []
    return [str(value)]


def prose(value: Any) -> list[str]:
    """The strings of a spec that are sentences (three words or more): prompts, greetings,
    messages, descriptions; not names, URLs or settings (a seed of 7 states no fact), and not
    ``examples`` lists (what callers might say to an intent classifier states no fact either:
    "What is the capital of France?")."""
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "examples" for s in prose(v)]
    return [s for s in leaves(value) if len(s.split()) >= 3]


def _knowledge(folder: Path, bases: tuple[str, ...]) -> list[str]:
    if not folder.is_dir():
        return []
    texts = []
    for kb in sorted(p for p in folder.iterdir() if p.is_dir()):
        if bases and kb.name not in bases:
            continue
        for path in sorted(kb.rglob("*")):
            if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


def _records(path: Path) -> dict[str, tuple[str, ...]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SourcesError(f"{path}: not JSON: {exc}") from None
    accounts = data.get("accounts", []) if isinstance(data, dict) else []
    return {
        str(a["account_id"]): tuple(leaves(a))
        for a in accounts
        if isinstance(a, dict) and "account_id" in a
    }


def load_agent_sources(agents_dir: Path) -> dict[str, AgentSources]:
    """Every agent spec in ``agents_dir`` (validated) with its knowledge and CRM, by name."""
    if not agents_dir.is_dir():
        raise SourcesError(f"agents folder {agents_dir} does not exist")
    found: dict[str, AgentSources] = {}
    for file in sorted([*agents_dir.glob("*.yaml"), *agents_dir.glob("*.yml")]):
        try:
            spec = load_agent_spec(file)
        except AgentSpecError as exc:
            raise SourcesError(str(exc)) from None
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
        home = agents_dir / spec.name
        texts = [*prose(raw), *_knowledge(home / KNOWLEDGE, spec.retrieval.data_sources)]
        records = _records(home / CRM_FILE)
        found[spec.name] = AgentSources(
            spec.name, file, tuple(texts), records, spec.voice.name, spec.filler_text
        )
    if not found:
        raise SourcesError(f"no agent spec (*.yaml) in {agents_dir}")
    return found
