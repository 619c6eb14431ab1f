"""grpc.aio interceptors: W3C trace context in metadata, one span per RPC, duration histograms.

The server span is the child of the caller's span, stays current while the handler (and, for
streams, every response it yields) runs, and ends with the RPC carrying its status code. The
client span covers the RPC until its call completes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from grpc import aio
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from trunkline.telemetry.propagation import extract_context, inject_headers, metadata_to_dict

_SCOPE = "trunkline.telemetry.grpc"
_OK = grpc.StatusCode.OK
T = TypeVar("T")


def split_method(full_method: str | bytes) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> ``("pkg.Service", "Method")``."""
    text = full_method.decode() if isinstance(full_method, bytes) else full_method
    service, _, method = text.lstrip("/").rpartition("/")
    return service, method


def status_code_of(value: object) -> grpc.StatusCode:
    """Normalise what ``ServicerContext.code()`` returns (None, an int or a StatusCode)."""
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        for code in grpc.StatusCode:
            if code.value[0] == value:
                return code
    return _OK


def _finish(span: Span, code: grpc.StatusCode, details: str | None = None) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not _OK:
        span.set_status(Status(StatusCode.ERROR, details or code.name))


class _Instruments:
    def __init__(self, meter_provider: metrics.MeterProvider | None, side: str) -> None:
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            f"rpc.{side}.duration", unit="ms", description=f"Duration of gRPC {side} calls"
        )

    def record(self, started: float, service: str, method: str, code: grpc.StatusCode) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.duration.record(
            elapsed_ms,
            {
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": method,
                "rpc.grpc.status_code": code.value[0],
            },
        )


class TracingServerInterceptor(aio.ServerInterceptor):
    """Continues the caller's trace for all four RPC kinds and records server durations."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._instruments = _Instruments(meter_provider, "server")

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        parent = extract_context(metadata_to_dict(handler_call_details.invocation_metadata))
        wrap = _ServerWrap(self, method, parent)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                wrap.unary(handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                wrap.streaming(handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                wrap.unary(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream is None:
            return handler
        return grpc.stream_stream_rpc_method_handler(
            wrap.streaming(handler.stream_stream),
            handler.request_deserializer,
            handler.response_serializer,
        )

    @contextmanager
    def span(
        self, method: str, parent: Context, context: aio.ServicerContext[Any, Any]
    ) -> Iterator[Span]:
        service, name = split_method(method)
        started = time.perf_counter()
        code = _OK
        with self._tracer.start_as_current_span(
            f"{service}/{name}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
                code = status_code_of(context.code())
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except aio.AbortError:
                code = status_code_of(context.code())
                raise
            except Exception as exc:
                code = grpc.StatusCode.UNKNOWN
                span.record_exception(exc)
                raise
            finally:
                _finish(span, code, context.details() if code is not _OK else None)
                self._instruments.record(started, service, name, code)


class _ServerWrap:
    def __init__(self, owner: TracingServerInterceptor, method: str, parent: Context) -> None:
        self._owner = owner
        self._method = method
        self._parent = parent

    def unary(self, behavior: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            with self._owner.span(self._method, self._parent, context):
                return await behavior(request, context)

        return handle

    def streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(behavior):
            # A handler that writes with context.write() and returns None.
            return self.unary(behavior)

        async def handle(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            with self._owner.span(self._method, self._parent, context):
                async for response in behavior(request, context):
                    yield response

        return handle


class _ClientBase:
    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._instruments = _Instruments(meter_provider, "client")

    async def _traced(
        self,
        continuation: Callable[[aio.ClientCallDetails, Any], Any],
        details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        service, name = split_method(details.method)
        started = time.perf_counter()
        span = self._tracer.start_span(
            f"{service}/{name}",
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
        metadata = aio.Metadata(*(tuple(details.metadata or ())))
        for key, value in inject_headers(context=trace.set_span_in_context(span)).items():
            metadata.add(key, value)
        new_details = aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        try:
            call = await continuation(new_details, request)
        except BaseException as exc:
            span.record_exception(exc)
            _finish(span, grpc.StatusCode.UNKNOWN, str(exc))
            span.end()
            raise

        def done(finished: aio.Call) -> None:
            # The call is complete, so its status is ready: end the span right here, so that
            # it has ended by the time the caller sees the response or the end of the stream.
            status = _ready(_status(finished))
            code, details = status if status is not None else (grpc.StatusCode.UNKNOWN, None)
            _finish(span, code, details)
            span.end()
            self._instruments.record(started, service, name, code)

        call.add_done_callback(done)
        return call


async def _status(call: aio.Call) -> tuple[grpc.StatusCode, str | None]:
    if call.cancelled():
        return grpc.StatusCode.CANCELLED, "cancelled"
    return await call.code(), await call.details()


def _ready(coroutine: Coroutine[Any, Any, T]) -> T | None:
    """Run ``coroutine`` if it can finish without waiting (a completed call's status)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    return None


class _UnaryUnary(_ClientBase, aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._traced(continuation, client_call_details, request)


class _UnaryStream(_ClientBase, aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._traced(continuation, client_call_details, request)


class _StreamUnary(_ClientBase, aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._traced(continuation, client_call_details, request_iterator)


class _StreamStream(_ClientBase, aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._traced(continuation, client_call_details, request_iterator)


def server_interceptors(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> list[aio.ServerInterceptor]:
    """Interceptors for ``grpc.aio.server(interceptors=...)`` (global providers by default)."""
    return [TracingServerInterceptor(tracer_provider, meter_provider)]


def client_interceptors(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> list[aio.ClientInterceptor]:
    """Interceptors for ``grpc.aio.insecure_channel(addr, interceptors=...)``, all four kinds."""
    return [
        _UnaryUnary(tracer_provider, meter_provider),
        _UnaryStream(tracer_provider, meter_provider),
        _StreamUnary(tracer_provider, meter_provider),
        _StreamStream(tracer_provider, meter_provider),
    ]
