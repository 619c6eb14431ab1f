"""The agent versions' retrieval settings, read from ``CONTEXT_AGENTS_DIR`` at start.

A Resolve names its agent in ``CallContext.agent``; the agent's ``retrieval`` section
(``trunkline.agents.Retrieval``) is the base the request's options override. An agent that is
not loaded gets the defaults (the turn still gets context), which ``Agents.known`` reports.
"""

from __future__ import annotations

import re
from pathlib import Path

from trunkline.agents import AgentSpec, Retrieval, load_agent_spec

_NOT_IDENT = re.compile(r"[^a-z0-9_.-]+")


class Agents:
    def __init__(self, specs: dict[str, AgentSpec] | None = None) -> None:
        self.specs = dict(specs or {})
        self.default = Retrieval()

    @classmethod
    def load(cls, folder: Path | None) -> Agents:
        """Every ``*.yaml``/``*.yml`` in ``folder`` (None: no agents, defaults for all)."""
        if folder is None:
            return cls()
        if not folder.is_dir():
            raise FileNotFoundError(f"agents dir {folder} is not a folder")
        specs: dict[str, AgentSpec] = {}
        for file in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            spec = load_agent_spec(file)
            if spec.name in specs:
                raise ValueError(f"{file}: agent {spec.name!r} is defined twice")
            specs[spec.name] = spec
        return cls(specs)

    def known(self, name: str) -> bool:
        return name in self.specs

    def intents(self, name: str) -> dict[str, tuple[str, ...]]:
        """The agent's example phrases by intent (none for an agent that is not loaded)."""
        spec = self.specs.get(name)
        return spec.intents.examples() if spec is not None else {}

    def retrieval(self, name: str) -> Retrieval:
        spec = self.specs.get(name)
        return spec.retrieval if spec is not None else self.default


def cache_agent_key(name: str, version: str) -> str:
    """The semantic-cache scope of an agent version: ``name.version`` as a lower-case slug.

    Answers are shared only within one agent version (a new prompt may answer differently).
    Empty when there is no agent name (such a Resolve never reads or writes the cache).
    """
    if not name:
        return ""
    key = f"{name}.{version}" if version else name
    return _NOT_IDENT.sub("-", key.lower()).strip("-.")[:63]
