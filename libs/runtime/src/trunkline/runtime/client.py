"""gRPC client helpers: a traced channel with keepalive, and health probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from trunkline.config import ServiceSettings
from trunkline.telemetry.grpc_interceptors import client_interceptors

DOWN = "DOWN"
"""Health text when nothing answers at the address."""

_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024


def channel_options(settings: ServiceSettings | None = None) -> list[tuple[str, int]]:
    """Keepalive (20 s pings, also while idle) and message limits matching the server's."""
    limit = settings.max_message_bytes if settings is not None else _DEFAULT_MAX_MESSAGE
    return [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
    ]


def channel(addr: str, settings: ServiceSettings | None = None) -> grpc.aio.Channel:
    """An insecure ``grpc.aio`` channel to ``addr`` (``host:port``) that propagates traces.

    Create it inside the running event loop, keep one per peer, close it on shutdown.
    """
    return grpc.aio.insecure_channel(
        addr, options=channel_options(settings), interceptors=client_interceptors()
    )


async def health_status(addr: str, service: str = "", timeout: float = 1.0) -> str:  # noqa: ASYNC109
    """One ``grpc.health.v1`` Check: ``SERVING``, ``NOT_SERVING``, ``SERVICE_UNKNOWN`` ... or
    ``DOWN`` when nothing answers within ``timeout`` (``NOT_FOUND`` for an unknown service)."""
    async with grpc.aio.insecure_channel(addr) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        try:
            reply = await stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "NOT_FOUND"
            return DOWN
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def wait_healthy(addr: str, service: str = "", timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until ``addr`` reports ``service`` SERVING; raise ``TimeoutError`` with the last
    status seen otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        left = deadline - time.monotonic()
        status = await health_status(addr, service, timeout=max(0.1, min(1.0, left)))
        if status == "SERVING":
            return
        if time.monotonic() + delay >= deadline:
            raise TimeoutError(
                f"{addr} service {service!r} not SERVING within {timeout}s (last: {status})"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def peers_serving(addrs: Iterable[str], timeout: float = 1.0) -> bool:  # noqa: ASYNC109
    """True when every ``host:port`` in ``addrs`` reports its process SERVING."""
    statuses = await asyncio.gather(*(health_status(addr, timeout=timeout) for addr in addrs))
    return all(status == "SERVING" for status in statuses)


LOST_STATUS = "Internal error from Core"
"""What grpc.aio reports when a request write fails because the peer has just ended the stream:
the peer's own status (often UNAVAILABLE) is lost on the way."""


def status_lost(exc: grpc.aio.AioRpcError) -> bool:
    """True when ``exc`` hides the peer's real status (treat it as transient and retry)."""
    return exc.code() is grpc.StatusCode.INTERNAL and (exc.details() or "") == LOST_STATUS
