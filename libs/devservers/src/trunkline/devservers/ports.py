"""Free loopback ports and waiting for a port to accept connections."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"

# Standard ports of a developer's own servers: never handed out for tests.
RESERVED_PORTS = frozenset({4222, 6222, 8222, 6379})


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free right now (never a standard NATS/Redis port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until ``host:port`` accepts connections; raise ``TimeoutError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout}s")
        time.sleep(0.01)
