"""The kopf handlers: thin, idempotent, each one call into the :class:`Controller`.

``build_registry(controller)`` returns a fresh ``kopf.OperatorRegistry`` (no module-global
registry, so a test can run its own operator). Per ``AgentRollout`` a daemon runs the analysis
loop: one reconcile, then sleep for as long as the decision asked, or until the resource's spec
changes (``promote``/``abort``, new versions) wakes it. Deleting a rollout runs
``cleanup_rollout`` under a finalizer, so its shadow runners never outlive it. A transient API
failure becomes ``kopf.TemporaryError`` (handlers) or a backoff (the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from kubernetes import client

from trunkline.agents.loader import GROUP, VERSION
from trunkline.agents.loader import PLURAL as VOICEAGENTS
from trunkline.rollout.cluster import TransientError
from trunkline.rollout.controller import Controller
from trunkline.rollout.resources import PLURAL as ROLLOUTS

log = logging.getLogger(__name__)

IDLE_S = 300.0
"""A rollout that asked for nothing (paused, finished) is still looked at this often."""
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
ANNOTATION_PREFIX = "rollout.trunkline.dev"


def operator_settings() -> kopf.OperatorSettings:
    """kopf keeps its handler progress in annotations: ``status`` belongs to the operator's own
    schema (the CRDs are structural and would prune ``status.kopf``)."""
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/cleanup"
    settings.posting.level = logging.WARNING
    # The CRDs come with the chart: no watching CRDs or namespaces for new resources (and no
    # RBAC for it); the namespaces are named or the operator is cluster-wide.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 60
    return settings


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the controller uses."""
    cfg = api.configuration
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    scheme, token = auth.split(" ", 1) if auth and " " in auth else (None, auth)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        default_namespace="default",
    )


class Wakeups:
    """One event per rollout: set when its spec changes, waited on by its daemon."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, namespace: str, name: str) -> asyncio.Event:
        return self._events.setdefault((namespace, name), asyncio.Event())

    def wake(self, namespace: str, name: str) -> None:
        self.event(namespace, name).set()

    def forget(self, namespace: str, name: str) -> None:
        self._events.pop((namespace, name), None)


async def _sleep(wake: asyncio.Event, stopped: Any, seconds: float) -> None:
    """Until ``seconds`` pass, the rollout is woken, or the daemon is stopped."""
    waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())}
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    wake.clear()


def build_registry(controller: Controller, api: client.ApiClient) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    wakeups = Wakeups()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api)

    @kopf.on.resume(GROUP, VERSION, VOICEAGENTS, registry=registry)
    @kopf.on.create(GROUP, VERSION, VOICEAGENTS, registry=registry)
    @kopf.on.update(GROUP, VERSION, VOICEAGENTS, field="spec", registry=registry)
    async def voiceagent_changed(body: kopf.Body, **_: Any) -> None:
        try:
            await controller.sync_voiceagent(dict(body))
        except TransientError as exc:
            raise kopf.TemporaryError(str(exc), delay=BACKOFF_S[1]) from exc

    @kopf.daemon(GROUP, VERSION, ROLLOUTS, registry=registry, cancellation_timeout=10.0)
    async def rollout_loop(
        name: str, namespace: str | None, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        assert namespace is not None  # AgentRollouts are namespaced
        wake = wakeups.event(namespace, name)
        failures = 0
        while not stopped:
            try:
                delay = await controller.reconcile_rollout(namespace, name)
                failures = 0
            except TransientError as exc:
                delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                log.warning("rollout %s/%s: %s; retrying in %gs", namespace, name, exc, delay)
            except Exception:
                delay = BACKOFF_S[-1]
                log.exception("rollout %s/%s: reconcile failed", namespace, name)
            await _sleep(wake, stopped, IDLE_S if delay is None else delay)
        wakeups.forget(namespace, name)

    @kopf.on.update(GROUP, VERSION, ROLLOUTS, field="spec", registry=registry)
    def rollout_changed(name: str, namespace: str | None, **_: Any) -> None:
        wakeups.wake(namespace or "", name)

    @kopf.on.delete(GROUP, VERSION, ROLLOUTS, registry=registry)
    async def rollout_deleted(body: kopf.Body, **_: Any) -> None:
        try:
            await controller.cleanup_rollout(dict(body))
        except TransientError as exc:
            raise kopf.TemporaryError(str(exc), delay=BACKOFF_S[1]) from exc

    return registry
