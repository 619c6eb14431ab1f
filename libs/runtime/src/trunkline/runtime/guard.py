"""The request guard: bad input and handler crashes become clear statuses, never a dead server.

Applied to every RPC of a service by :func:`trunkline.runtime.serve`:

- a request that is not valid protobuf for the method is answered ``INVALID_ARGUMENT`` naming
  the expected message type (grpc itself would answer ``UNKNOWN``);
- a request carrying a ``CallContext`` without a tenant is answered ``INVALID_ARGUMENT``
  (for client streams the first message is checked, see :mod:`trunkline.runtime.validation`);
- ``NotImplementedError`` from a handler is answered ``UNIMPLEMENTED``;
- any other exception is logged with its traceback and answered ``INTERNAL`` with a short message.

Oversized messages never reach the guard: grpc answers ``RESOURCE_EXHAUSTED`` from the
``max_message_bytes`` limits. Handlers must be ``async`` (coroutines or async generators).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import grpc
from grpc.aio import AbortError

from trunkline.runtime.validation import tenant_problem

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class Undecodable:
    """What the guarded deserializer hands on instead of raising: the bytes did not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class RequestGuard(grpc.aio.ServerInterceptor):
    """Server interceptor wrapping every async handler with the checks listed in the module doc."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return guard_handler(handler, handler_call_details.method.lstrip("/"))


def guard_handler(handler: Handler, method: str) -> Handler:
    """Return ``handler`` wrapped with the request guard (unchanged if it is not async).

    ``method`` (``package.Service/Method``) prefixes every error message.
    """
    decode = _guarded_deserializer(handler.request_deserializer, method)
    serialize = handler.response_serializer
    if handler.unary_unary is not None and _is_async(handler.unary_unary):
        return grpc.unary_unary_rpc_method_handler(
            _guard_unary(handler.unary_unary, method, single=True), decode, serialize
        )
    if handler.unary_stream is not None and _is_async(handler.unary_stream):
        return grpc.unary_stream_rpc_method_handler(
            _guard_stream(handler.unary_stream, method, single=True), decode, serialize
        )
    if handler.stream_unary is not None and _is_async(handler.stream_unary):
        return grpc.stream_unary_rpc_method_handler(
            _guard_unary(handler.stream_unary, method, single=False), decode, serialize
        )
    if handler.stream_stream is not None and _is_async(handler.stream_stream):
        return grpc.stream_stream_rpc_method_handler(
            _guard_stream(handler.stream_stream, method, single=False), decode, serialize
        )
    return handler


def _is_async(behavior: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


def _guarded_deserializer(decode: Deserializer | None, method: str) -> Deserializer | None:
    if decode is None:
        return None

    def guarded(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # any parse failure is the caller's bad input
            return Undecodable(exc)

    return guarded


async def _check(request: object, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    if isinstance(request, Undecodable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{method}: request is not a valid protobuf message ({request.error})",
        )
    problem = tenant_problem(request)
    if problem is not None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {problem}")


async def _checked_stream(
    requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any], method: str
) -> AsyncIterator[Any]:
    first = True
    async for request in requests:
        if first:
            await _check(request, context, method)
            first = False
        elif isinstance(request, Undecodable):
            await _check(request, context, method)
        yield request


def _guard_unary(
    behavior: Callable[..., Any], method: str, *, single: bool
) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if single:
            await _check(request, context, method)
        else:
            request = _checked_stream(request, context, method)
        try:
            return await behavior(request, context)
        except Exception as exc:
            await _fail(exc, context, method)

    return guarded


def _guard_stream(behavior: Callable[..., Any], method: str, *, single: bool) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def guarded_gen(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if single:
                await _check(request, context, method)
            else:
                request = _checked_stream(request, context, method)
            try:
                async for response in behavior(request, context):
                    yield response
            except Exception as exc:
                await _fail(exc, context, method)

        return guarded_gen
    return _guard_unary(behavior, method, single=single)


async def _fail(
    exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> NoReturn:
    if isinstance(exc, AbortError):
        raise exc
    if isinstance(exc, NotImplementedError):
        code = context.code()
        details = context.details() or str(exc) or "not implemented"
        if not isinstance(code, grpc.StatusCode) or code == grpc.StatusCode.OK:
            code = grpc.StatusCode.UNIMPLEMENTED
        await context.abort(code, f"{method}: {details}")
    log.exception("unhandled error in %s", method)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(exc).__name__}); see server log"
    )
