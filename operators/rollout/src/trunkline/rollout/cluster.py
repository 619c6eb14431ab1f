"""What the controller asks of the Kubernetes API, behind a small ABC.

:class:`KubeCluster` uses the official ``kubernetes`` client (blocking; each call runs in a
thread). Transient API failures (connection errors, 409 conflicts, 429, 5xx) are raised as
:class:`TransientError` so the handlers retry with backoff (kopf ``TemporaryError``); anything
else (403 from narrow RBAC, 422 from a schema) is a real error and is raised as is.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trunkline.agents.loader import GROUP, VERSION
from trunkline.agents.loader import PLURAL as VOICEAGENTS
from trunkline.rollout.resources import PLURAL as ROLLOUTS

COMPONENT = "trunkline-rollout"


class TransientError(RuntimeError):
    """Worth retrying: the API was unreachable, busy or the object changed under us."""


class Cluster(abc.ABC):
    @abc.abstractmethod
    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def patch_rollout_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> None: ...

    @abc.abstractmethod
    async def list_voiceagents(self, namespace: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def patch_voiceagent_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> None: ...

    @abc.abstractmethod
    async def apply_deployment(self, manifest: dict[str, Any]) -> None:
        """Create it, or set its replicas and pod template if it exists."""

    @abc.abstractmethod
    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> bool:
        """Set replicas; False when there is no such Deployment."""

    @abc.abstractmethod
    async def delete_deployment(self, namespace: str, name: str) -> bool: ...

    @abc.abstractmethod
    async def post_event(
        self, obj: dict[str, Any], type_: str, reason: str, message: str
    ) -> None: ...


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    """A client for ``kubeconfig``; without one, in-cluster config, else ``~/.kube/config``."""
    if kubeconfig is not None:
        return _from_kubeconfig(str(kubeconfig))
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        return _from_kubeconfig(None)
    return client.ApiClient(configuration)


def _from_kubeconfig(path: str | None) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    return api


def _transient(exc: ApiException) -> bool:
    return exc.status in (409, 429) or (exc.status or 0) >= 500


class KubeCluster(Cluster):
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
        except ApiException as exc:
            if _transient(exc):
                raise TransientError(f"API {exc.status} {exc.reason}") from exc
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(f"API unreachable: {exc}") from exc

    async def get_rollout(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, ROLLOUTS, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def patch_rollout_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, ROLLOUTS, name, {"status": status},
        )  # fmt: skip

    async def list_voiceagents(self, namespace: str) -> list[dict[str, Any]]:
        found = await self._call(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, VOICEAGENTS
        )
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    async def patch_voiceagent_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        await self._call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, VOICEAGENTS, name, {"status": status},
        )  # fmt: skip

    async def apply_deployment(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        try:
            await self._call(self.apps.create_namespaced_deployment, meta["namespace"], manifest)
            return
        except TransientError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 409):
                raise
        spec = manifest["spec"]
        patch = {"spec": {"replicas": spec["replicas"], "template": spec["template"]}}
        await self._call(
            self.apps.patch_namespaced_deployment, meta["name"], meta["namespace"], patch
        )

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> bool:
        try:
            await self._call(
                self.apps.patch_namespaced_deployment_scale,
                name, namespace, {"spec": {"replicas": replicas}},
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def delete_deployment(self, namespace: str, name: str) -> bool:
        try:
            await self._call(self.apps.delete_namespaced_deployment, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def post_event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                # client-go's convention: <object>.<unix nanoseconds in hex>, so names sort by time
                name=f"{meta['name']}.{time.time_ns():x}",
                namespace=meta["namespace"],
            ),
            involved_object=client.V1ObjectReference(
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=COMPONENT,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        await self._call(self.core.create_namespaced_event, meta["namespace"], event)
