"""One trace from this process, through a gRPC bidi stream into a second process, and through a
NATS message into a third; every process exports OTLP to a real receiver."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from grpc import aio
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from trunkline.devservers import NatsServer
from trunkline.telemetry import setup_telemetry
from trunkline.telemetry.sink import OtlpSink, SpanRecord

pytestmark = pytest.mark.integration

PEERS = Path(__file__).with_name("trace_peers.py")


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PEERS), *args, stdout=asyncio.subprocess.PIPE
    )


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, f"peer exited early with {await proc.wait()}"
    return line.decode().strip()


def _one(spans: list[SpanRecord], name: str, service: str) -> SpanRecord:
    found = [s for s in spans if s.name == name and s.service_name == service]
    assert len(found) == 1, f"{name}@{service}: {[(s.name, s.service_name) for s in spans]}"
    return found[0]


async def test_trace_crosses_grpc_stream_and_nats(
    otlp_sink: OtlpSink, nats_server: NatsServer
) -> None:
    subject = f"test.trace.{uuid.uuid4().hex}"
    args = (otlp_sink.endpoint, nats_server.url, subject)
    listener = await _spawn("listen", *args)
    relay = await _spawn("relay", *args)
    telemetry = setup_telemetry("peer-client", otlp_sink.endpoint, 0, set_global=False)
    try:
        assert await _line(listener) == "READY"
        ready, port = (await _line(relay)).split()
        assert ready == "READY"

        tracer = telemetry.tracer("test")
        async with aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=telemetry.client_interceptors()
        ) as channel:
            with tracer.start_as_current_span("client.turn"):
                chat: aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
                    "/test.Relay/Chat"
                )
                call = chat()
                await call.write(b"hello")
                assert await call.read() == b"relayed:hello"
                await call.done_writing()
                assert await call.read() is aio.EOF

        assert await _line(listener) == "GOT"
        assert await asyncio.wait_for(listener.wait(), 30) == 0
        relay.terminate()
        assert await asyncio.wait_for(relay.wait(), 30) == 0
        await asyncio.to_thread(telemetry.shutdown)

        spans = await otlp_sink.wait_for(lambda got: len(got) >= 6, timeout=30)
    finally:
        for proc in (listener, relay):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.to_thread(telemetry.shutdown)

    root = _one(spans, "client.turn", "peer-client")
    client = _one(spans, "test.Relay/Chat", "peer-client")
    server = _one(spans, "test.Relay/Chat", "peer-relay")
    produce = _one(spans, f"{subject} publish", "peer-relay")
    consume = _one(spans, f"{subject} process", "peer-listener")
    handle = _one(spans, "peer.handle", "peer-listener")

    assert {s.trace_id for s in spans} == {root.trace_id}
    assert root.parent_span_id == ""
    assert client.parent_span_id == root.span_id
    assert server.parent_span_id == client.span_id
    assert produce.parent_span_id == server.span_id
    assert consume.parent_span_id == produce.span_id
    assert handle.parent_span_id == consume.span_id
    assert (client.kind, server.kind) == (OtlpSpan.SPAN_KIND_CLIENT, OtlpSpan.SPAN_KIND_SERVER)
    assert consume.kind == OtlpSpan.SPAN_KIND_CONSUMER
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert handle.attributes["text"] == "hello"
