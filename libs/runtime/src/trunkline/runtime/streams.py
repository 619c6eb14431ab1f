"""Helpers for servicers of streaming RPCs whose first message carries the stream's config."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
Ctx = grpc.aio.ServicerContext[Any, Any]


async def abort_invalid(context: Ctx, message: str) -> NoReturn:
    """End the RPC with INVALID_ARGUMENT and ``message``."""
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("unreachable")  # context.abort always raises


async def config_first(
    requests: AsyncIterable[M],
    context: Ctx,
    *,
    oneof: str = "request",
    config: str = "config",
) -> tuple[M | None, AsyncIterator[M]]:
    """The first message (``None`` for an empty stream) and an iterator over the rest.

    A first message whose ``oneof`` is not ``config`` ends the RPC with INVALID_ARGUMENT.
    """
    rest = aiter(requests)
    first = await anext(rest, None)
    if first is not None and first.WhichOneof(oneof) != config:
        got = first.WhichOneof(oneof) or "nothing"
        await abort_invalid(context, f"the first message must carry the {config} (got {got})")
    return first, rest
