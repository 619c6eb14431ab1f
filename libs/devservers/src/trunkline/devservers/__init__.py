"""Local NATS (JetStream) and Redis processes for tests and the dev stack.

Every server runs as our own child on loopback, blocks in ``start()`` until healthy and stops
with SIGTERM (SIGKILL after a timeout)::

    with NatsServer() as nats, RedisServer() as redis:
        connect(nats.url, redis.url)

With ``run_dir`` a ``<name>.pid`` file is written there; ``stop_pidfile`` stops it later.
"""

from trunkline.devservers.gotools import TOOLS, GoTool, ToolMissingError, find_tool, tools_dir
from trunkline.devservers.jaeger import JaegerServer, query_ready
from trunkline.devservers.nats import NatsServer, find_nats_server, nats_ping, reuse_or_start_nats
from trunkline.devservers.ports import free_port, port_open, wait_for_port
from trunkline.devservers.process import (
    ExternalServer,
    ManagedServer,
    ServerStartError,
    pid_alive,
    start_on_free_port,
    stop_pid,
    stop_pidfile,
)
from trunkline.devservers.redis import (
    RedisServer,
    find_redis_server,
    redis_ping,
    reuse_or_start_redis,
)

__all__ = [
    "TOOLS",
    "ExternalServer",
    "GoTool",
    "JaegerServer",
    "ManagedServer",
    "NatsServer",
    "RedisServer",
    "ServerStartError",
    "ToolMissingError",
    "find_nats_server",
    "find_redis_server",
    "find_tool",
    "free_port",
    "nats_ping",
    "pid_alive",
    "port_open",
    "query_ready",
    "redis_ping",
    "reuse_or_start_nats",
    "reuse_or_start_redis",
    "start_on_free_port",
    "stop_pid",
    "stop_pidfile",
    "tools_dir",
    "wait_for_port",
]
