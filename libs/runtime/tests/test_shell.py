# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""The service shell in-process: readiness gating, the request guard, and the drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.config import ServiceSettings
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.runtime import LIVENESS, ServiceShell, Unimplemented, service_name
from trunkline.runtime.health import HealthService

pytestmark = pytest.mark.integration

Ctx = grpc.aio.ServicerContext[Any, Any]
TENANT = call_pb2.CallContext(tenant_id="acme")
HUMAN_LOOP = "trunkline.hitl.v1.HumanLoop"
NOT_SERVING_ = health_pb2.HealthCheckResponse.NOT_SERVING


class Loop(hitl_pb2_grpc.HumanLoopServicer):
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def Escalate(self, request: hitl_pb2.EscalateRequest, context: Ctx) -> Any:
        raise RuntimeError("secret detail that must not reach the caller")

    async def RequestApproval(self, request: Any, context: Ctx) -> Any:
        raise NotImplementedError("approvals come later")

    async def WaitDecision(
        self, request: hitl_pb2.WaitDecisionRequest, context: Ctx
    ) -> AsyncIterator[hitl_pb2.WaitDecisionResponse]:
        yield hitl_pb2.WaitDecisionResponse(ticket=hitl_pb2.Ticket(ticket_id=request.ticket_id))
        raise ValueError("broken mid-stream")

    async def Decide(self, request: hitl_pb2.DecideRequest, context: Ctx) -> Any:
        self.entered.set()
        await self.release.wait()
        return hitl_pb2.DecideResponse(ticket=hitl_pb2.Ticket(ticket_id=request.ticket_id))

    ListQueue = Unimplemented("the queue issue")
    TakeOver = Unimplemented("the takeover issue")


class Speech(stt_pb2_grpc.SpeechToTextServicer):
    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[stt_pb2.StreamingRecognizeRequest], context: Ctx
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        async for _ in request_iterator:
            yield stt_pb2.StreamingRecognizeResponse()

    Recognize = Unimplemented("the stt issue")


@pytest.fixture
async def shell() -> AsyncIterator[tuple[ServiceShell, Loop, asyncio.Event, grpc.aio.Channel]]:
    ready = asyncio.Event()

    async def is_ready() -> bool:
        return ready.is_set()

    loop = Loop()
    names = [service_name(Loop), service_name(Speech)]
    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=5.0, max_message_bytes=64 * 1024),
        services=names,
        ready=is_ready,
    )

    def register(server: grpc.aio.Server) -> None:
        hitl_pb2_grpc.add_HumanLoopServicer_to_server(loop, server)
        stt_pb2_grpc.add_SpeechToTextServicer_to_server(Speech(), server)

    port = await shell.start(register)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield shell, loop, ready, channel
    await shell.shutdown()


async def test_health_is_not_serving_until_ready(shell: Any) -> None:
    _, _, ready, channel = shell
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=HUMAN_LOOP))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.NOT_SERVING
    ready.set()
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


async def test_handler_crash_is_internal_and_the_server_lives_on(shell: Any) -> None:
    _, _, _, channel = shell
    stub = hitl_pb2_grpc.HumanLoopStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as crash:
        await stub.Escalate(hitl_pb2.EscalateRequest(context=TENANT))
    assert crash.value.code() == grpc.StatusCode.INTERNAL
    assert "trunkline.hitl.v1.HumanLoop/Escalate" in (crash.value.details() or "")
    assert "secret detail" not in (crash.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.Escalate(hitl_pb2.EscalateRequest(context=TENANT))
    assert again.value.code() == grpc.StatusCode.INTERNAL


async def test_stream_crash_after_a_response_is_internal(shell: Any) -> None:
    _, _, _, channel = shell
    stub = hitl_pb2_grpc.HumanLoopStub(channel)
    call = stub.WaitDecision(hitl_pb2.WaitDecisionRequest(context=TENANT, ticket_id="t9"))
    first = await call.read()
    assert first.ticket.ticket_id == "t9"
    with pytest.raises(grpc.aio.AioRpcError) as crash:
        await call.read()
    assert crash.value.code() == grpc.StatusCode.INTERNAL


async def test_not_implemented_error_and_unimplemented_rpcs_say_what(shell: Any) -> None:
    _, _, _, channel = shell
    stub = hitl_pb2_grpc.HumanLoopStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.RequestApproval(hitl_pb2.RequestApprovalRequest(context=TENANT))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "approvals come later" in (raised.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as declared:
        await stub.ListQueue(hitl_pb2.ListQueueRequest(context=TENANT))
    assert declared.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert declared.value.details() == (
        "trunkline.hitl.v1.HumanLoop/ListQueue is not built yet (lands with: the queue issue)"
    )


async def test_client_stream_first_message_needs_a_tenant(shell: Any) -> None:
    _, _, _, channel = shell
    stub = stt_pb2_grpc.SpeechToTextStub(channel)

    async def requests(first: stt_pb2.StreamingRecognizeRequest) -> AsyncIterator[Any]:
        yield first
        yield stt_pb2.StreamingRecognizeRequest(audio=b"\0\0")  # later: no context needed

    good = stub.StreamingRecognize(
        requests(stt_pb2.StreamingRecognizeRequest(context=TENANT, audio=b"\0\0"))
    )
    assert len([r async for r in good]) == 2
    bad = stub.StreamingRecognize(requests(stt_pb2.StreamingRecognizeRequest(audio=b"\0\0")))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        _ = [r async for r in bad]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context.tenant_id is required" in (refused.value.details() or "")


async def test_garbage_and_oversized_requests(shell: Any) -> None:
    _, _, _, channel = shell
    raw = channel.unary_unary("/trunkline.hitl.v1.HumanLoop/Decide")
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await raw(b"\xff\xff\xff\xff")
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (garbage.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as big:
        await raw(b"\x0a" + b"x" * (64 * 1024))
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_shutdown_flips_health_first_and_drains_in_flight_rpcs(shell: Any) -> None:
    shell_, loop, ready, channel = shell
    ready.set()
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
        pass  # the stream reports the transition itself
    stub = hitl_pb2_grpc.HumanLoopStub(channel)
    in_flight = asyncio.ensure_future(
        stub.Decide(hitl_pb2.DecideRequest(context=TENANT, ticket_id="t1"))
    )
    await loop.entered.wait()
    stopping = asyncio.ensure_future(shell_.shutdown())
    final = await watch.read()
    assert final.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert shell_.draining.is_set()
    assert not in_flight.done()
    loop.release.set()
    reply = await in_flight
    assert reply.ticket.ticket_id == "t1"
    assert await watch.read() is grpc.aio.EOF
    assert await watch.code() == grpc.StatusCode.OK
    await stopping


async def test_reflection_lists_the_services_when_enabled() -> None:
    from grpc_reflection.v1alpha import (  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
        reflection_pb2,
        reflection_pb2_grpc,
    )

    shell = ServiceShell(ServiceSettings(grpc_port=0), services=[HUMAN_LOOP], reflection=True)
    port = await shell.start(lambda s: hitl_pb2_grpc.add_HumanLoopServicer_to_server(Loop(), s))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)

            async def ask() -> AsyncIterator[Any]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")

            replies = [reply async for reply in stub.ServerReflectionInfo(ask())]
        names = {s.name for s in replies[0].list_services_response.service}
        assert {HUMAN_LOOP, "grpc.health.v1.Health"} <= names
    finally:
        await shell.shutdown()


async def test_shutdown_goes_on_when_the_grpc_server_does_not_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from trunkline.runtime import server as runtime_server  # noqa: PLC0415

    monkeypatch.setattr(runtime_server, "STOP_SLACK_S", 0.2)
    hooked = asyncio.Event()

    async def hook() -> None:
        hooked.set()

    async def is_ready() -> bool:
        return True

    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=0.1), services=[], ready=is_ready,
        on_shutdown=[hook],
    )  # fmt: skip
    await shell.start(lambda server: None)
    stuck = shell._server
    assert stuck is not None
    real_stop = stuck.stop

    async def never(grace: float | None) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(stuck, "stop", never)
    await asyncio.wait_for(shell.shutdown(), 5)
    assert hooked.is_set()  # the hooks still ran
    assert "gRPC server stop did not finish within 0.3s" in caplog.text
    await real_stop(None)


async def _check(channel: grpc.aio.Channel, service: str) -> int:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(reply.status)


async def _until(channel: grpc.aio.Channel, service: str, status: int) -> None:
    """Watch ``service`` until it reports ``status`` (at most 5 s)."""
    health = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(5):
        watch = health.Watch(health_pb2.HealthCheckRequest(service=service))
        while (await watch.read()).status != status:
            pass
        watch.cancel()


async def test_liveness_serves_while_readiness_follows_the_peers() -> None:
    """A peer outage turns the process unready; its liveness stays SERVING (no restart)."""
    peers_up = asyncio.Event()

    async def is_ready() -> bool:
        return peers_up.is_set()

    shell = ServiceShell(
        ServiceSettings(grpc_port=0), services=[HUMAN_LOOP], ready=is_ready, recheck_seconds=0.05
    )
    port = await shell.start(lambda s: hitl_pb2_grpc.add_HumanLoopServicer_to_server(Loop(), s))
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, NOT_SERVING_
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await _check(channel, "") == not_serving
            assert await _check(channel, LIVENESS) == serving
            peers_up.set()
            await _until(channel, "", serving)
            peers_up.clear()  # the outage
            await _until(channel, HUMAN_LOOP, not_serving)
            assert await _check(channel, "") == not_serving
            for _ in range(10):  # and it stays alive for the whole outage
                assert await _check(channel, LIVENESS) == serving
                await asyncio.sleep(0.02)
    finally:
        await shell.shutdown()


def test_liveness_is_not_a_service_name() -> None:
    with pytest.raises(ValueError, match="liveness"):
        ServiceShell(ServiceSettings(grpc_port=0), services=[LIVENESS])


async def test_the_drain_waits_for_work_in_hand_up_to_drain_seconds() -> None:
    """``drained`` (the gateway's live calls) holds the shutdown until it returns, bounded."""
    calls_over = asyncio.Event()
    asked = asyncio.Event()

    async def drained() -> None:
        asked.set()
        await calls_over.wait()

    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=5.0), services=[], drained=drained
    )
    await shell.start(lambda server: None)
    stopping = asyncio.ensure_future(shell.shutdown())
    await asyncio.wait_for(asked.wait(), 2)
    await asyncio.sleep(0.3)
    assert not stopping.done()  # a live call holds the drain
    calls_over.set()
    await asyncio.wait_for(stopping, 2)

    bounded = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=0.3), services=[], drained=asyncio.Event().wait
    )
    await bounded.start(lambda server: None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(bounded.shutdown(), 3)
    assert 0.25 < loop.time() - started < 2.0  # no longer than drain_seconds (+ slack)


async def test_a_shutdown_during_the_last_write_still_sends_not_serving() -> None:
    """The stream is suspended at its yield (gRPC still writing SERVING) when the shutdown lands:
    it must send NOT_SERVING before it ends (a full CI run saw it end with SERVING last)."""
    health = HealthService([HUMAN_LOOP])
    await health.set_all(health_pb2.HealthCheckResponse.SERVING)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), Any)
    assert (await anext(watch)).status == health_pb2.HealthCheckResponse.SERVING
    await health.enter_shutdown()
    assert (await anext(watch)).status == NOT_SERVING_
    with pytest.raises(StopAsyncIteration):
        await anext(watch)
    liveness = health.Watch(health_pb2.HealthCheckRequest(service=LIVENESS), Any)
    assert (await anext(liveness)).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(StopAsyncIteration):
        await anext(liveness)
