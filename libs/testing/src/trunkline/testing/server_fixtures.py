"""Pytest plugin: real NATS (JetStream) and Redis servers on free loopback ports.

Registered by the root ``conftest.py``. Servers start lazily, once per session, only when a test
asks for them, never on the standard ports 4222/6379, and are stopped at the end.

- ``nats_server`` (session): a ``NatsServer`` (``.url``, ``.restart()``), JetStream on
- ``redis_server`` (session): a ``RedisServer`` (``.url``, ``.restart()``)
- ``redis_url`` (function): the Redis URL with its database flushed before the test
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from trunkline.devservers import NatsServer, RedisServer, start_on_free_port


def flush_redis(url: str) -> None:
    """Empty the database ``url`` points at (FLUSHDB)."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def clean_redis(server: RedisServer) -> str:
    """Start ``server`` again if a test stopped it, flush its database and return its URL."""
    if not server.running:
        server.start()
    flush_redis(server.url)
    return server.url


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS server with JetStream for the whole session; its store survives ``restart()``."""
    store = tmp_path_factory.mktemp("nats-store")
    server = start_on_free_port(lambda: NatsServer(store_dir=store))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server (no persistence) for the whole session."""
    server = start_on_free_port(RedisServer)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis's URL, restarted if a test stopped it, with an empty database."""
    return clean_redis(redis_server)
