"""The service shell as a real process (``python -m trunkline.hitl``): health, bad input, drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.devservers import NatsServer, free_port
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.runtime import DOWN, health_status, wait_healthy

pytestmark = pytest.mark.integration

HUMAN_LOOP = "trunkline.hitl.v1.HumanLoop"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TENANT = call_pb2.CallContext(tenant_id="acme")


@dataclass
class Hitl:
    proc: subprocess.Popen[bytes]
    addr: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_hitl(nats_url: str, log: Path, *, drain_seconds: float = 5.0) -> Hitl:
    port = free_port()
    env = {
        **os.environ,
        "HITL_GRPC_PORT": str(port),
        "HITL_NATS_URL": nats_url,
        "HITL_DRAIN_SECONDS": str(drain_seconds),
        "HITL_MAX_MESSAGE_BYTES": str(256 * 1024),
        "HITL_LOG_JSON": "false",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trunkline.hitl"], env=env, stdout=out, stderr=out
        )
    return Hitl(proc, f"127.0.0.1:{port}", log)


def stop(hitl: Hitl) -> None:
    if hitl.proc.poll() is None:
        hitl.proc.kill()
    hitl.proc.wait(10)


async def listening(hitl: Hitl) -> str:
    """Wait until the process answers health at all; return that first status."""
    while (status := await health_status(hitl.addr, timeout=0.5)) == DOWN:
        assert hitl.proc.poll() is None, hitl.log_text()
        await asyncio.sleep(0.05)
    return status


@pytest.fixture(scope="module")
def hitl_process(
    nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hitl]:
    hitl = start_hitl(nats_server.url, tmp_path_factory.mktemp("hitl") / "hitl.log")
    try:
        yield hitl
    finally:
        stop(hitl)


@pytest.fixture
async def hitl(hitl_process: Hitl) -> AsyncIterator[grpc.aio.Channel]:
    await wait_healthy(hitl_process.addr, HUMAN_LOOP, timeout=30)
    async with grpc.aio.insecure_channel(hitl_process.addr) as channel:
        yield channel


async def test_health_is_serving_only_once_nats_is_reachable(tmp_path: Path) -> None:
    nats_port = free_port()
    hitl = start_hitl(f"nats://127.0.0.1:{nats_port}", tmp_path / "hitl.log")
    nats = NatsServer(port=nats_port)
    try:
        async with asyncio.timeout(30):
            assert await listening(hitl) == "NOT_SERVING"
            async with grpc.aio.insecure_channel(hitl.addr) as channel:
                watch = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service=HUMAN_LOOP)
                )
                assert (await watch.read()).status == NOT_SERVING
                await asyncio.to_thread(nats.start)
                assert (await watch.read()).status == SERVING
                watch.cancel()
    finally:
        stop(hitl)
        nats.close()


async def test_missing_tenant_is_invalid_argument(hitl: grpc.aio.Channel) -> None:
    stub = hitl_pb2_grpc.HumanLoopStub(hitl)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Escalate(hitl_pb2.EscalateRequest(context=call_pb2.CallContext(call_id="c1")))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        f"{HUMAN_LOOP}/Escalate: trunkline.hitl.v1.EscalateRequest.context.tenant_id is "
        "required (a request must name its tenant)"
    )


async def test_garbage_bytes_get_a_clear_status_and_the_server_lives(
    hitl: grpc.aio.Channel, hitl_process: Hitl
) -> None:
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = hitl.unary_unary(
        f"/{HUMAN_LOOP}/Escalate"
    )
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await raw(b"\xff\xff\xff\xff\x0f")
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (garbage.value.details() or "")
    assert "EscalateRequest" in (garbage.value.details() or "")
    assert hitl_process.proc.poll() is None
    assert await health_status(hitl_process.addr, HUMAN_LOOP) == "SERVING"


async def test_oversized_message_is_resource_exhausted(hitl: grpc.aio.Channel) -> None:
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = hitl.unary_unary(
        f"/{HUMAN_LOOP}/Escalate"
    )
    with pytest.raises(grpc.aio.AioRpcError) as big:
        await raw(b"\x12" + b"\x00" * (300 * 1024))
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_sigterm_flips_health_first_and_the_open_stream_ends_cleanly(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    hitl = start_hitl(nats_server.url, tmp_path / "hitl.log", drain_seconds=5.0)
    try:
        async with asyncio.timeout(30):
            await wait_healthy(hitl.addr, HUMAN_LOOP, timeout=30)
            async with grpc.aio.insecure_channel(hitl.addr) as channel:
                watch: Any = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service="")
                )
                assert (await watch.read()).status == SERVING
                loop = asyncio.get_running_loop()
                sent = loop.time()
                hitl.proc.send_signal(signal.SIGTERM)
                assert (await watch.read()).status == NOT_SERVING
                assert await watch.read() is grpc.aio.EOF
                assert await watch.code() == grpc.StatusCode.OK
                code = await asyncio.to_thread(hitl.proc.wait, 10)
                assert code == 0, hitl.log_text()
                assert loop.time() - sent < 5.0  # nothing held the drain up
    finally:
        stop(hitl)
    log = hitl.log_text()
    assert log.index("shutting down: NOT_SERVING") < log.index("stopped")
