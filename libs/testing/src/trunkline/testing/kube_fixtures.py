"""Pytest plugin: a real Kubernetes API server (etcd + kube-apiserver) on loopback, envtest style.

Registered by the root ``conftest.py``. Started lazily, once per session, only when a test asks
for it; stopped at the end (only what it started). The binaries come from ``make install``
(``tools/envtest_build.py``); when they are missing the test fails saying how to build them.

- ``kube_apiserver`` (session): a :class:`~trunkline.devservers.kube.KubeApiServer` with
  ``.kubeconfig`` (admin, ``system:masters``) and ``.user_kubeconfig`` (an RBAC-bound user with
  no rights until a test grants some)
- ``kube_crds`` (session): the chart's CRDs (``deploy/helm/trunkline/crds``) installed and
  established; yields their names
- ``kube_namespace`` (function): a fresh namespace, deleted after the test
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trunkline.devservers.gotools import ToolMissingError
from trunkline.devservers.kube import KubeApiServer, find_envtest

CRDS = Path(__file__).resolve().parents[5] / "deploy" / "helm" / "trunkline" / "crds"


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[KubeApiServer]:
    try:
        binaries = find_envtest()
    except ToolMissingError as exc:
        pytest.fail(str(exc))
    server = KubeApiServer(binaries=binaries)
    server.start()
    try:
        yield server
    finally:
        server.close()


def admin_client(server: KubeApiServer) -> Any:
    from kubernetes import config  # noqa: PLC0415 - only Kubernetes tests need the client

    return config.new_client_from_config(config_file=str(server.kubeconfig))  # type: ignore[no-untyped-call]


def install_crds(api: Any, folder: Path = CRDS, timeout: float = 30.0) -> list[str]:
    """Create (or replace) every CRD in ``folder`` and wait until each is Established."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(folder.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(name)
            assert current.metadata is not None
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            found = crd.status.conditions if crd.status is not None else None
            conditions = {c.type: c.status for c in found or []}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not established within {timeout}s: {conditions}")
            time.sleep(0.05)
    return names


@pytest.fixture(scope="session")
def kube_crds(kube_apiserver: KubeApiServer) -> list[str]:
    api = admin_client(kube_apiserver)
    try:
        return install_crds(api)
    finally:
        api.close()


@pytest.fixture
def kube_namespace(kube_apiserver: KubeApiServer) -> Iterator[str]:
    from kubernetes import client  # noqa: PLC0415

    api = admin_client(kube_apiserver)
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)
        api.close()
