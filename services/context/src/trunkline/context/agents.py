"""The agent versions' retrieval settings, read from ``CONTEXT_AGENTS_DIR`` at start.

A Resolve names its agent in ``CallContext.agent``; the agent's ``retrieval`` section
(``trunkline.agents.Retrieval``) is the base the request's options override. An agent that is
not loaded gets the defaults (the turn still gets context), which ``Agents.known`` reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trunkline.agents import AgentSpec, Grounding, Retrieval, load_agents
from trunkline.agents.cluster import ClusterAgents, active_agents

_NOT_IDENT = re.compile(r"[^a-z0-9_.-]+")


class Agents:
    def __init__(self, specs: dict[str, AgentSpec] | None = None) -> None:
        self.specs = dict(specs or {})
        self.default = Retrieval()
        self.source: ClusterAgents | None = None

    @classmethod
    def load(cls, folder: Path | None) -> Agents:
        """Every ``*.yaml``/``*.yml`` in ``folder`` through the one loader (``trunkline.agents``:
        a bad file is an error naming it); None: no agents, defaults for all."""
        if folder is None:
            return cls()
        if not folder.is_dir():
            raise FileNotFoundError(f"agents dir {folder} is not a folder")
        return cls(load_agents(folder))

    @classmethod
    def watch_cluster(cls, source: ClusterAgents) -> Agents:
        """Each agent's active, validated ``VoiceAgent`` in ``source``'s namespace, kept
        current by a watch thread (stopped with ``source.stop()``)."""
        agents = cls()
        agents.source = source

        def changed(items: list[dict[str, Any]]) -> None:
            agents.specs = active_agents(items)  # one assignment: readers see old or new

        changed(source.snapshot())
        source.start_thread(changed)
        return agents

    def close(self) -> None:
        if self.source is not None:
            self.source.stop()
            self.source.api.close()  # type: ignore[no-untyped-call]

    def known(self, name: str) -> bool:
        return name in self.specs

    def intents(self, name: str) -> dict[str, tuple[str, ...]]:
        """The agent's example phrases by intent (none for an agent that is not loaded)."""
        spec = self.specs.get(name)
        return spec.intents.examples() if spec is not None else {}

    def retrieval(self, name: str) -> Retrieval:
        spec = self.specs.get(name)
        return spec.retrieval if spec is not None else self.default

    def cache_line(self, name: str) -> float:
        """The retrieval confidence a machine answer needs to be stored for replay: where the
        agent's knowledge answers a question confidently (``grounding.confident_at``), and never
        below its out-of-domain line. Below it an answer rests on a passage matched by a word or
        two, or on the model alone: true for the caller who asked, maybe, but not to replay to
        the next (the eval's cache held a whitening price for a misheard toothache)."""
        spec = self.specs.get(name)
        grounding = spec.grounding if spec is not None else Grounding()
        return max(self.retrieval(name).min_confidence, grounding.confident_at)


def cache_agent_key(name: str, version: str) -> str:
    """The semantic-cache scope of an agent version: ``name.version`` as a lower-case slug.

    Answers are shared only within one agent version (a new prompt may answer differently).
    Empty when there is no agent name (such a Resolve never reads or writes the cache).
    """
    if not name:
        return ""
    key = f"{name}.{version}" if version else name
    return _NOT_IDENT.sub("-", key.lower()).strip("-.")[:63]
