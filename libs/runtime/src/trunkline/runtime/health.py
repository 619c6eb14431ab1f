"""``grpc.health.v1`` that tells the truth: NOT_SERVING until ready, NOT_SERVING first on shutdown.

Unlike the stock servicer, ``Watch`` streams end (status OK) right after they have sent the
final NOT_SERVING of a shutdown, so open watchers never hold the drain up.

Readiness and liveness are two questions. The process (``""``) and each named service answer
readiness: SERVING only while models are loaded and peers reachable. :data:`LIVENESS`
(``"liveness"``) answers liveness: SERVING whenever the process answers at all, whatever its
peers do, so that a Kubernetes liveness probe restarts a wedged process (its event loop blocked:
the probe times out) and never a healthy one whose Redis, NATS or peer is down (that one only
turns unready and keeps its live calls). During the drain the gRPC server takes no new RPC, so
no probe gets an answer then; the kubelet stops liveness and startup probes of a pod being
deleted (``pkg/kubelet/prober/worker.go``), so they never cut a drain short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

ServingStatus = int
"""A ``grpc.health.v1.HealthCheckResponse.ServingStatus`` value."""
SERVING: ServingStatus = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: ServingStatus = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: ServingStatus = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

HEALTH_SERVICE = "grpc.health.v1.Health"
LIVENESS = "liveness"
"""The health service name of liveness: SERVING while the process answers (never follows peers)."""


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc, unused-ignore]
    """Readiness of the whole process (service ``""``) and of each named gRPC service, and the
    process's liveness (:data:`LIVENESS`, always SERVING: it is answered, or the probe fails)."""

    def __init__(self, services: Iterable[str]) -> None:
        self._status: dict[str, ServingStatus] = {"": NOT_SERVING}
        for name in services:
            if name == LIVENESS:
                raise ValueError(f"{LIVENESS!r} is the liveness status, not a service name")
            self._status[name] = NOT_SERVING
        self._changed = asyncio.Condition()
        self._shutting_down = False

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def status(self, service: str = "") -> ServingStatus | None:
        if service == LIVENESS:
            return SERVING
        return self._status.get(service)

    async def set_all(self, status: ServingStatus) -> None:
        """Set the process and every service to ``status``; ignored once shutdown began."""
        if self._shutting_down:
            return
        await self._set_all(status)

    async def enter_shutdown(self) -> None:
        """Permanently NOT_SERVING; watchers get it and their streams end."""
        if self._shutting_down:
            return
        async with self._changed:
            self._shutting_down = True
            for name in self._status:
                self._status[name] = NOT_SERVING
            self._changed.notify_all()

    async def _set_all(self, status: ServingStatus) -> None:
        async with self._changed:
            for name in self._status:
                self._status[name] = status
            self._changed.notify_all()

    async def Check(  # noqa: N802 - grpc method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # noqa: N802 - grpc method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        # The status is read afresh after every yield: a shutdown that lands while the last
        # message is still being written must not end the stream before its NOT_SERVING is sent.
        last: ServingStatus | None = None
        while True:
            async with self._changed:
                status = self.status(request.service)
                if status is None:
                    status = SERVICE_UNKNOWN
                if status == last:
                    if self._shutting_down:  # liveness too: the stream ends, the status stays
                        return
                    await self._changed.wait()
                    continue
            yield health_pb2.HealthCheckResponse(status=status)
            last = status
