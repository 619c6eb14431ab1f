"""Agents from the Kubernetes API: the ``VoiceAgent`` resources the rollout operator validated.

Which versions reach the services is decided here, purely (:func:`active_agents`): a VoiceAgent
counts only when the operator recorded ``Validated=True`` (an invalid one gets
``Validated=False`` and never reaches a service) and, for live calls, ``status.active`` (the one
version of each agent that takes calls; a promotion moves it). :class:`ClusterAgents` lists and
watches them (the official ``kubernetes`` client, blocking, in a thread) and calls back with the
whole new set after every change, so a service swaps its agents between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from trunkline.agents.loader import GROUP, PLURAL, VERSION, spec_from_resource
from trunkline.agents.spec import AgentSpec, AgentSpecError

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 60
"""A watch is re-opened (from a fresh list) at least this often."""


def _condition(status: Mapping[str, Any], kind: str) -> str | None:
    for item in status.get("conditions") or ():
        if item.get("type") == kind:
            return str(item.get("status"))
    return None


def validated(resource: Mapping[str, Any]) -> bool:
    """The operator found this VoiceAgent valid for its current generation."""
    status = resource.get("status") or {}
    generation = (resource.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    fresh = generation is None or observed is None or observed == generation
    return _condition(status, "Validated") == "True" and fresh


def usable_specs(resources: Iterable[Mapping[str, Any]]) -> list[tuple[AgentSpec, bool]]:
    """Every validated VoiceAgent's spec, with whether it is its agent's active version."""
    found = []
    for item in resources:
        if not validated(item):
            continue
        try:
            spec = spec_from_resource(item)
        except AgentSpecError as exc:  # validated by an operator with another schema
            log.warning("skipping VoiceAgent: %s", exc)
            continue
        found.append((spec, bool((item.get("status") or {}).get("active"))))
    return found


def active_agents(resources: Iterable[Mapping[str, Any]]) -> dict[str, AgentSpec]:
    """Agents by name: each agent's validated, active version (agents with none are absent)."""
    return {spec.name: spec for spec, active in usable_specs(resources) if active}


def find_version(
    resources: Iterable[Mapping[str, Any]], name: str, version: str
) -> AgentSpec | None:
    """One validated agent version, active or not (a shadow runner's candidate)."""
    for spec, _ in usable_specs(resources):
        if spec.name == name and spec.version == version:
            return spec
    return None


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    """A client for ``kubeconfig``; without one, in-cluster config, else ``~/.kube/config``."""
    if kubeconfig is not None:
        api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return api
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        fallback: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
        return fallback
    return client.ApiClient(configuration)


class ClusterAgents:
    """VoiceAgents of one namespace: listed once, then watched."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._custom = client.CustomObjectsApi(api)
        self._stop = threading.Event()
        self.items: dict[str, dict[str, Any]] = {}

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        found: dict[str, Any] = self._custom.list_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, self.namespace, PLURAL
        )
        items: list[dict[str, Any]] = found.get("items", [])
        return items, str(found.get("metadata", {}).get("resourceVersion", ""))

    def snapshot(self) -> list[dict[str, Any]]:
        """The namespace's VoiceAgents now (blocking)."""
        items, _ = self._list()
        self.items = {i["metadata"]["name"]: i for i in items}
        return list(self.items.values())

    async def load(self) -> list[dict[str, Any]]:
        """The namespace's VoiceAgents now."""
        return await asyncio.to_thread(self.snapshot)

    async def active(self) -> dict[str, AgentSpec]:
        return active_agents(await self.load())

    async def watch(self, on_change: Callable[[list[dict[str, Any]]], None]) -> None:
        """Call ``on_change`` (on this loop) with every VoiceAgent of the namespace after each
        change, until cancelled (list, then watch from its resourceVersion; re-list after a
        watch ends or fails)."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def call(fn: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(fn, *args)

        self.start_thread(lambda items: call(on_change, items), lambda: call(done.set))
        try:
            await done.wait()
        finally:
            self.stop()

    def start_thread(
        self,
        on_change: Callable[[list[dict[str, Any]]], None],
        on_exit: Callable[[], None] = lambda: None,
    ) -> threading.Thread:
        """Watch in a thread of its own, calling ``on_change`` there, until :meth:`stop`."""
        thread = threading.Thread(
            target=self._watch_thread, args=(on_change, on_exit), name="voiceagents", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _watch_thread(
        self, on_change: Callable[[list[dict[str, Any]]], None], on_exit: Callable[[], None]
    ) -> None:
        def publish() -> None:
            on_change(list(self.items.values()))

        try:
            while not self._stop.is_set():
                try:
                    items, version = self._list()
                    self.items = {i["metadata"]["name"]: i for i in items}
                    publish()
                    watcher = watch.Watch()  # type: ignore[no-untyped-call]
                    for event in watcher.stream(  # type: ignore[no-untyped-call]
                        self._custom.list_namespaced_custom_object,
                        GROUP, VERSION, self.namespace, PLURAL,
                        resource_version=version, timeout_seconds=WATCH_TIMEOUT_S,
                    ):  # fmt: skip
                        if self._stop.is_set():
                            watcher.stop()  # type: ignore[no-untyped-call]
                            break
                        obj = event["object"]
                        name = obj["metadata"]["name"]
                        if event["type"] == "DELETED":
                            self.items.pop(name, None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self.items[name] = obj
                        else:
                            continue
                        publish()
                except (ApiException, OSError, ValueError) as exc:
                    log.warning("VoiceAgent watch failed (%r); re-listing in 1 s", exc)
                    self._stop.wait(1.0)
                except Exception as exc:  # urllib3 errors and the like: keep watching
                    log.warning("VoiceAgent watch broke (%r); re-listing in 1 s", exc)
                    self._stop.wait(1.0)
        finally:
            on_exit()
