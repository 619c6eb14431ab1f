"""The process shell: one gRPC server with health, limits, guard and telemetry; SIGTERM drains.

Life of a service process::

    start      telemetry + logs; grpc.aio server with the telemetry interceptors, the request
               guard and the message-size limits; health (process "" and every service)
               NOT_SERVING; the service's servicers registered; listening.
    readiness  ``ready()`` is polled (quickly until the first True, then every
               ``recheck_seconds``); health follows it: SERVING only while it says True.
    SIGTERM    health NOT_SERVING for "" and every service FIRST (watchers see it), ``draining``
    /SIGINT    set (long streams may end themselves), the server stops accepting RPCs and lets
               in-flight ones finish for up to ``drain_seconds`` while ``drained()`` (work
               that is not a gRPC call: the gateway's live phone calls) gets as long to end,
               then shutdown hooks run, telemetry is flushed and :func:`serve` returns (exit
               code 0). A second signal cuts the drain short.

Liveness (the ``liveness`` health status, see :mod:`trunkline.runtime.health`) is SERVING
whenever the server answers: it never follows ``ready()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.config import ServiceSettings
from trunkline.runtime.guard import Handler, RequestGuard
from trunkline.runtime.health import HEALTH_SERVICE, NOT_SERVING, SERVING, HealthService
from trunkline.telemetry.logs import configure_logging
from trunkline.telemetry.setup import OtlpTls, Telemetry, setup_telemetry

log = logging.getLogger(__name__)

Register = Callable[[grpc.aio.Server], None]
"""Adds the service's servicers to the server (``add_<Service>Servicer_to_server``)."""
ReadyCheck = Callable[[], Awaitable[bool]]
"""True only when the service can really serve: models loaded, peers reachable."""
ShutdownHook = Callable[[], Awaitable[None]]
"""Runs after the drain, before telemetry is flushed: close clients, flush buffers."""
Drained = Callable[[], Awaitable[None]]
"""Called when the drain begins: stop taking new work, return once the work in hand is done
(bounded by ``drain_seconds``)."""

_HOOK_TIMEOUT = 5.0
STOP_SLACK_S = 5.0
"""How long past ``drain_seconds`` the gRPC server may take to stop before shutdown goes on
without it (once, in CI, ``grpc.aio.Server.stop(1.0)`` had not returned after 300 s)."""


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    """grpc server options from settings: message limits (oversized -> RESOURCE_EXHAUSTED)."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


HEALTH_PREFIX = f"/{HEALTH_SERVICE}/"
"""Health probes are not traced: they would bury the real spans (probes run every few seconds)."""


class _Untraced(grpc.aio.ServerInterceptor):
    """Runs ``inner`` for every method except those starting with ``skip``."""

    def __init__(self, inner: grpc.aio.ServerInterceptor, skip: str) -> None:
        self._inner = inner
        self._skip = skip

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        if handler_call_details.method.startswith(self._skip):
            return await continuation(handler_call_details)
        return await self._inner.intercept_service(continuation, handler_call_details)


class ServiceShell:
    """One service process's gRPC server and lifecycle. Most callers just use :func:`serve`.

    ``services`` are the full proto names registered (``trunkline.hitl.v1.HumanLoop``); each gets
    its own health status next to the process-wide ``""``.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        services: Sequence[str],
        ready: ReadyCheck | None = None,
        on_shutdown: Sequence[ShutdownHook] = (),
        reflection: bool = False,
        ready_timeout: float = 5.0,
        recheck_seconds: float = 5.0,
        draining: asyncio.Event | None = None,
        telemetry: Telemetry | None = None,
        drained: Drained | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.services = tuple(services)
        self.health = HealthService(self.services)
        self.draining = draining if draining is not None else asyncio.Event()
        """Set when shutdown begins: long-lived streams should finish what they hold and end."""
        self.port: int | None = None
        self._ready = ready
        self._on_shutdown = tuple(on_shutdown)
        self._drained = drained
        self._reflection = reflection
        self._ready_timeout = ready_timeout
        self._recheck = recheck_seconds
        self._stop = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._signals = 0
        self._cut_short = asyncio.Event()
        self._force_stop: asyncio.Task[None] | None = None

    async def start(self, register: Register) -> int:
        """Build, register and start the server; return the bound port. Health: NOT_SERVING."""
        server = grpc.aio.server(
            interceptors=[*self._telemetry_interceptors(), RequestGuard()],
            options=server_options(self.settings),
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        register(server)
        if self._reflection:
            from grpc_reflection.v1alpha import (  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
                reflection,
            )

            names = (*self.services, HEALTH_SERVICE, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server)
        try:
            port = server.add_insecure_port(self.settings.grpc_bind)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise OSError(f"cannot listen on {self.settings.grpc_bind}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {self.settings.grpc_bind}")
        await server.start()
        self._server = server
        self.port = port
        self._ready_task = asyncio.create_task(self._follow_readiness(), name="readiness")
        log.info(
            "listening",
            extra={"service": self.settings.service_name, "addr": f"{self.settings.host}:{port}"},
        )
        return port

    def _telemetry_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        if self.telemetry is None:
            return []
        return [_Untraced(inner, HEALTH_PREFIX) for inner in self.telemetry.server_interceptors()]

    def request_stop(self) -> None:
        """Begin shutdown (what SIGTERM/SIGINT do); a second call cuts the drain short."""
        self._signals += 1
        if self._signals == 1:
            self._stop.set()
        elif self._server is not None:
            log.warning("second stop request: ending the drain now")
            self._cut_short.set()
            self._force_stop = asyncio.get_running_loop().create_task(self._server.stop(0))

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> None:
        """NOT_SERVING first, stop accepting, drain, then hooks. Safe to call twice."""
        self.draining.set()
        await self.health.enter_shutdown()
        log.info(
            "shutting down: NOT_SERVING, draining", extra={"grace_s": self.settings.drain_seconds}
        )
        if self._ready_task is not None:
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task
            self._ready_task = None
        if self._server is not None:
            grace = self.settings.drain_seconds
            waits = [_bounded(self._server.stop(grace), grace + STOP_SLACK_S, "gRPC server stop")]
            if self._drained is not None:
                waits.append(self._drain_work(self._drained, grace))
            await asyncio.gather(*waits)
            self._server = None
        for hook in self._on_shutdown:
            try:
                await asyncio.wait_for(hook(), _HOOK_TIMEOUT)
            except Exception:
                log.exception("shutdown hook %s failed", getattr(hook, "__name__", hook))
        self._on_shutdown = ()
        log.info("stopped")

    async def _drain_work(self, drained: Drained, grace: float) -> None:
        """``drained()`` for at most ``grace`` seconds (less after a second stop request)."""
        work = asyncio.ensure_future(drained())
        cut = asyncio.ensure_future(self._cut_short.wait())
        done, _ = await asyncio.wait({work, cut}, timeout=grace, return_when="FIRST_COMPLETED")
        for task in (work, cut):
            task.cancel()
        if work in done and not work.cancelled() and work.exception() is not None:
            log.error("drain failed", exc_info=work.exception())
        elif work not in done:
            log.warning("drain ended with work still in hand", extra={"grace_s": grace})

    async def run(self, register: Register) -> None:
        """Start, serve until SIGTERM/SIGINT (or :meth:`request_stop`), then shut down."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start(register)
            await self.wait_stopped()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _follow_readiness(self) -> None:
        backoff = 0.05
        while True:
            ok = await self._check_ready()
            await self.health.set_all(SERVING if ok else NOT_SERVING)
            if ok:
                backoff = 0.05
                await asyncio.sleep(self._recheck)
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _check_ready(self) -> bool:
        if self._ready is None:
            return True
        try:
            return bool(await asyncio.wait_for(self._ready(), self._ready_timeout))
        except TimeoutError:
            log.warning("ready check timed out after %ss", self._ready_timeout)
        except Exception:
            log.exception("ready check failed")
        return False


async def serve(
    settings: ServiceSettings,
    register: Register,
    *,
    services: Sequence[str],
    ready: ReadyCheck | None = None,
    on_shutdown: Sequence[ShutdownHook] = (),
    reflection: bool = False,
    draining: asyncio.Event | None = None,
    drained: Drained | None = None,
) -> None:
    """Run one service process until SIGTERM/SIGINT, then drain and return (see module doc).

    ``services``: full proto names of the registered services (health reports each).
    ``ready``: polled; health is SERVING only while it returns True (None: ready once started).
    ``on_shutdown``: hooks run in order after the drain. ``draining``: an event set when the
    shutdown begins, for servicers whose long-lived streams should end themselves.
    ``drained``: called as the drain begins; the drain lasts until it returns (at most
    ``drain_seconds``): work in hand that is not a gRPC call.
    Sets up logging and telemetry from ``settings`` and flushes them at the end.
    """
    configure_logging(settings.log_level, settings.log_json)
    headers = settings.otlp_headers.get_secret_value() if settings.otlp_headers else ""
    telemetry = setup_telemetry(
        settings.service_name,
        settings.otlp_endpoint,
        settings.metrics_port,
        metrics_addr=settings.host,
        otlp_tls=OtlpTls(
            insecure=settings.otlp_insecure,
            ca_file=settings.otlp_ca_file,
            headers=OtlpTls.parse_headers(headers),
        ),
    )
    try:
        shell = ServiceShell(
            settings,
            services=services,
            ready=ready,
            on_shutdown=on_shutdown,
            reflection=reflection,
            draining=draining,
            telemetry=telemetry,
            drained=drained,
        )
        await shell.run(register)
    finally:
        telemetry.shutdown()


async def _bounded(work: Awaitable[object], seconds: float, what: str) -> None:
    """Await ``work`` for at most ``seconds``; past that, cancel it and go on (logged). Unlike
    ``asyncio.wait_for`` this does not wait for the cancelled work to finish either."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.error("%s did not finish within %.1fs: going on without it", what, seconds)
