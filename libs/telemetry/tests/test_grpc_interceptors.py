"""The gRPC interceptors carry the trace across all four RPC kinds (in-process server+client)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from trunkline.telemetry import client_interceptors, server_interceptors
from trunkline.telemetry.prometheus import PrometheusReader, registry_for
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit

SERVICE = "test.Echo"


def _work(label: str) -> None:
    with trace.get_tracer("handler").start_as_current_span(f"work.{label}"):
        pass


async def unary(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    _work("unary")
    return request.upper()


async def server_stream(
    request: bytes, context: aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    for part in request.split(b" "):
        _work("server_stream")
        yield part


async def client_stream(
    requests: AsyncIterator[bytes], context: aio.ServicerContext[bytes, bytes]
) -> bytes:
    parts = [part async for part in requests]
    _work("client_stream")
    return b"+".join(parts)


async def bidi(
    requests: AsyncIterator[bytes], context: aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    async for request in requests:
        _work("bidi")
        yield request[::-1]


async def fail(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort returned")


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )


@pytest.fixture
async def channel(span_recorder: SpanRecorder) -> AsyncIterator[aio.Channel]:
    server = aio.server(interceptors=server_interceptors(span_recorder.provider))
    server.add_generic_rpc_handlers([_handlers()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=client_interceptors(span_recorder.provider)
    ) as chan:
        yield chan
    await server.stop(None)


def _check_chain(recorder: SpanRecorder, method: str, work: str) -> tuple[ReadableSpan, ...]:
    root = recorder.named("root")
    client = next(
        s for s in recorder.spans() if s.name == f"{SERVICE}/{method}" and s.kind is SpanKind.CLIENT
    )
    server = next(
        s for s in recorder.spans() if s.name == f"{SERVICE}/{method}" and s.kind is SpanKind.SERVER
    )
    works = [s for s in recorder.spans() if s.name == f"work.{work}"]
    assert works
    trace_ids = {s.context.trace_id for s in (root, client, server, *works)}
    assert trace_ids == {root.context.trace_id}
    assert client.parent is not None
    assert client.parent.span_id == root.context.span_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    for span in works:
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        # the handler's spans lie inside the server span's lifetime
        assert server.start_time is not None
        assert span.start_time is not None
        assert server.end_time is not None
        assert span.end_time is not None
        assert server.start_time <= span.start_time <= span.end_time <= server.end_time
    for span in (client, server):
        assert span.attributes is not None
        assert span.attributes["rpc.grpc.status_code"] == 0
        assert span.attributes["rpc.method"] == method
    return root, client, server


async def _requests(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_unary_unary(channel: aio.Channel, span_recorder: SpanRecorder) -> None:
    call: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Unary")
    with trace.get_tracer("test").start_as_current_span("root"):
        assert await call(b"hi") == b"HI"
    _check_chain(span_recorder, "Unary", "unary")


async def test_unary_stream(channel: aio.Channel, span_recorder: SpanRecorder) -> None:
    method: aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        f"/{SERVICE}/ServerStream"
    )
    with trace.get_tracer("test").start_as_current_span("root"):
        parts = [part async for part in method(b"a b c")]
    assert parts == [b"a", b"b", b"c"]
    _check_chain(span_recorder, "ServerStream", "server_stream")
    assert len([s for s in span_recorder.spans() if s.name == "work.server_stream"]) == 3


async def test_stream_unary(channel: aio.Channel, span_recorder: SpanRecorder) -> None:
    method: aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
        f"/{SERVICE}/ClientStream"
    )
    with trace.get_tracer("test").start_as_current_span("root"):
        assert await method(_requests(b"x", b"y")) == b"x+y"
    _check_chain(span_recorder, "ClientStream", "client_stream")


async def test_stream_stream_with_write_and_read(
    channel: aio.Channel, span_recorder: SpanRecorder
) -> None:
    method: aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(f"/{SERVICE}/Bidi")
    with trace.get_tracer("test").start_as_current_span("root"):
        call = method()
        await call.write(b"abc")
        assert await call.read() == b"cba"
        # the server span is still open while the stream lives
        assert not [s for s in span_recorder.spans() if s.kind is SpanKind.SERVER]
        await call.write(b"xy")
        assert await call.read() == b"yx"
        await call.done_writing()
        assert await call.read() is aio.EOF
        assert await call.code() is grpc.StatusCode.OK
    _check_chain(span_recorder, "Bidi", "bidi")


async def test_error_status_is_recorded(channel: aio.Channel, span_recorder: SpanRecorder) -> None:
    method: aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{SERVICE}/Fail")
    with pytest.raises(aio.AioRpcError) as caught:
        await method(b"x")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    spans = [s for s in span_recorder.spans() if s.name == f"{SERVICE}/Fail"]
    assert {s.kind for s in spans} == {SpanKind.CLIENT, SpanKind.SERVER}
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        assert span.status.status_code is StatusCode.ERROR


async def test_rpc_duration_histograms(span_recorder: SpanRecorder) -> None:
    reader = PrometheusReader()
    meters = MeterProvider(metric_readers=[reader])
    server = aio.server(interceptors=server_interceptors(span_recorder.provider, meters))
    server.add_generic_rpc_handlers([_handlers()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    interceptors = client_interceptors(span_recorder.provider, meters)
    async with aio.insecure_channel(f"127.0.0.1:{port}", interceptors=interceptors) as chan:
        unary_call: aio.UnaryUnaryMultiCallable[bytes, bytes] = chan.unary_unary(
            f"/{SERVICE}/Unary"
        )
        await unary_call(b"a")
        await unary_call(b"b")
    await server.stop(None)
    text = registry_for(reader).get_sample_value(
        "rpc_server_duration_ms_count",
        {
            "rpc_grpc_status_code": "0",
            "rpc_method": "Unary",
            "rpc_service": SERVICE,
            "rpc_system": "grpc",
        },
    )
    assert text == 2.0
    client_count = registry_for(reader).get_sample_value(
        "rpc_client_duration_ms_count",
        {
            "rpc_grpc_status_code": "0",
            "rpc_method": "Unary",
            "rpc_service": SERVICE,
            "rpc_system": "grpc",
        },
    )
    assert client_count == 2.0
    meters.shutdown()
