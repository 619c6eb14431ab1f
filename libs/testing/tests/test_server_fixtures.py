from __future__ import annotations

import nats
import pytest
import redis

from trunkline.devservers import NatsServer, RedisServer
from trunkline.testing.server_fixtures import clean_redis, flush_redis

pytestmark = pytest.mark.integration


async def test_nats_server_is_loopback_jetstream_on_a_free_port(nats_server: NatsServer) -> None:
    assert nats_server.url.startswith("nats://127.0.0.1:")
    assert nats_server.port != 4222
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
    finally:
        await nc.close()


def test_redis_url_hands_out_an_empty_database(redis_url: str, redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-over", "1")
        flush_redis(redis_url)
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_server_restart_keeps_the_url(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.restart()
    assert redis_server.url == url
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
    finally:
        client.close()


def test_clean_redis_restarts_a_stopped_session_server(redis_server: RedisServer) -> None:
    redis_server.stop()
    assert not redis_server.running
    url = clean_redis(redis_server)
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
        assert client.dbsize() == 0
    finally:
        client.close()
