"""Where the gateway's agents come from: YAML files (``GATEWAY_AGENTS_PATH``) locally, or the
``VoiceAgent`` resources of a namespace (``GATEWAY_AGENTS_SOURCE=cluster``), watched.

Either way through ``trunkline.agents`` (one loader, the same errors). From the API, only each
agent's validated, active version is served (``trunkline.agents.cluster.active_agents``); the
profiles mapping is updated in place after every change, so a promotion reaches new calls at
once and calls in progress keep the version they started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from trunkline.agents import AgentSpec
from trunkline.agents.cluster import ClusterAgents, active_agents, api_client
from trunkline.gateway.profile import AgentProfile, load_profiles, profile_of
from trunkline.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def swap(profiles: dict[str, AgentProfile], specs: Mapping[str, AgentSpec]) -> None:
    """Make ``profiles`` the profiles of ``specs`` (same object, changed in place); an
    unchanged version keeps its profile."""
    for name in [n for n in profiles if n not in specs]:
        del profiles[name]
        log.info("agent %s: no active version any more", name)
    for name, spec in specs.items():
        old = profiles.get(name)
        if old is None or old.version != spec.version:
            profiles[name] = profile_of(spec)
            log.info("agent %s: version %s takes new calls", name, spec.version)


class AgentSource:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.profiles: dict[str, AgentProfile] = {}
        self._cluster: ClusterAgents | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def load(self) -> dict[str, AgentProfile]:
        """The profiles now; the returned dict is the one :meth:`follow` keeps current."""
        settings = self.settings
        if settings.agents_source == "files":
            self.profiles.update(load_profiles(settings.agents_path))
            return self.profiles
        self._cluster = ClusterAgents(api_client(settings.kubeconfig), settings.agents_namespace)
        swap(self.profiles, await self._cluster.active())
        return self.profiles

    async def start(self) -> dict[str, AgentProfile]:
        """:meth:`load`, then :meth:`follow` in a task of :attr:`tasks`."""
        profiles = await self.load()
        self.tasks.append(asyncio.create_task(self.follow(), name="agents"))
        return profiles

    async def follow(self) -> None:
        """Cluster: keep the profiles current until cancelled. Files: return at once."""
        if self._cluster is None:
            return

        def changed(items: list[dict[str, Any]]) -> None:
            swap(self.profiles, active_agents(items))

        await self._cluster.watch(changed)

    def close(self) -> None:
        """Cancel :attr:`tasks` (the watch, and what the process added) and close the client."""
        for task in self.tasks:
            task.cancel()
        if self._cluster is not None:
            self._cluster.api.close()  # type: ignore[no-untyped-call]
