"""The process shell shared by every service: gRPC server, health, SIGTERM drain, logs.

A service's ``__main__`` reads its settings once and calls :func:`serve`::

    async def main() -> None:
        settings = HitlSettings.load()
        await serve(
            settings,
            lambda server: hitl_pb2_grpc.add_HumanLoopServicer_to_server(servicer, server),
            services=[HUMAN_LOOP],
            ready=servicer.ready,
        )

    raise SystemExit(run(main))

RPCs not built yet are declared :class:`Unimplemented`; peers are reached with
:func:`channel` and probed with :func:`health_status` / :func:`wait_healthy`.
"""

from trunkline.runtime.background import Connecting
from trunkline.runtime.client import (
    DOWN,
    channel,
    channel_options,
    health_status,
    peers_serving,
    status_lost,
    wait_healthy,
)
from trunkline.runtime.guard import RequestGuard
from trunkline.runtime.health import LIVENESS, HealthService
from trunkline.runtime.main import run
from trunkline.runtime.server import (
    Drained,
    ReadyCheck,
    Register,
    ServiceShell,
    ShutdownHook,
    serve,
    server_options,
)
from trunkline.runtime.unimplemented import Unimplemented, abort_unimplemented, service_name
from trunkline.runtime.validation import tenant_problem

__all__ = [
    "DOWN",
    "LIVENESS",
    "Connecting",
    "Drained",
    "HealthService",
    "ReadyCheck",
    "Register",
    "RequestGuard",
    "ServiceShell",
    "ShutdownHook",
    "Unimplemented",
    "abort_unimplemented",
    "channel",
    "channel_options",
    "health_status",
    "peers_serving",
    "run",
    "serve",
    "server_options",
    "service_name",
    "status_lost",
    "tenant_problem",
    "wait_healthy",
]
