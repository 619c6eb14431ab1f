"""Which API failures are retried (TransientError) and which are real errors."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from trunkline.rollout.cluster import KubeCluster, TransientError

pytestmark = pytest.mark.unit


def failing(exc: BaseException) -> object:
    def call(*_: object, **__: object) -> object:
        raise exc

    return call


@pytest.mark.parametrize("status", [409, 429, 500, 503])
async def test_busy_or_conflicting_api_is_transient(status: int) -> None:
    cluster = KubeCluster(client.ApiClient())
    with pytest.raises(TransientError, match=f"API {status}"):
        await cluster._call(failing(ApiException(status=status, reason="x")))


@pytest.mark.parametrize("status", [403, 422])
async def test_forbidden_or_invalid_is_a_real_error(status: int) -> None:
    cluster = KubeCluster(client.ApiClient())
    with pytest.raises(ApiException) as info:
        await cluster._call(failing(ApiException(status=status, reason="x")))
    assert info.value.status == status


async def test_unreachable_api_is_transient() -> None:
    cluster = KubeCluster(client.ApiClient())
    error = urllib3.exceptions.MaxRetryError(None, "/apis", "connection refused")  # type: ignore[arg-type]
    with pytest.raises(TransientError, match="API unreachable"):
        await cluster._call(failing(error))
