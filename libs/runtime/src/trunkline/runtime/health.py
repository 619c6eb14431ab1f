"""``grpc.health.v1`` that tells the truth: NOT_SERVING until ready, NOT_SERVING first on shutdown.

Unlike the stock servicer, ``Watch`` streams end (status OK) right after they have sent the
final NOT_SERVING of a shutdown, so open watchers never hold the drain up.
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


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc, unused-ignore]
    """Health of the whole process (service ``""``) and of each named gRPC service."""

    def __init__(self, services: Iterable[str]) -> None:
        self._status: dict[str, ServingStatus] = {"": NOT_SERVING}
        for name in services:
            self._status[name] = NOT_SERVING
        self._changed = asyncio.Condition()
        self._shutting_down = False

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def status(self, service: str = "") -> ServingStatus | None:
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
        self._shutting_down = True
        await self._set_all(NOT_SERVING)

    async def _set_all(self, status: ServingStatus) -> None:
        async with self._changed:
            for name in self._status:
                self._status[name] = status
            self._changed.notify_all()

    async def Check(  # noqa: N802 - grpc method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # noqa: N802 - grpc method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last: ServingStatus | None = None
        while True:
            async with self._changed:
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                if status == last and not self._shutting_down:
                    await self._changed.wait()
                    continue
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self._shutting_down:
                return
