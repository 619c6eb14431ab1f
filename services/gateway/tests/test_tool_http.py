"""The HTTP tool runner against a real aiohttp server on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
from trunkline.gateway.peers.types import CallInfo, ToolCallRequested
from trunkline.gateway.tools import HttpToolRunner, ToolExecutor, ToolRunError
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

CALL = CallInfo("CA7", "acme", "acme-dental", "1.0.0", caller_role="caller")


class Crm:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.release = asyncio.Event()

    async def lookup(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append((body, dict(request.headers)))
        return web.json_response({"account_id": body["account_id"], "name": "Dana"})

    async def broken(self, request: web.Request) -> web.Response:
        return web.Response(status=500, text="database down")

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response({})

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="not json")


@pytest.fixture
async def crm() -> AsyncIterator[tuple[Crm, str]]:
    state = Crm()
    app = web.Application()
    app.router.add_post("/tools/lookup_account", state.lookup)
    app.router.add_post("/tools/broken", state.broken)
    app.router.add_post("/tools/slow", state.slow)
    app.router.add_post("/tools/text", state.text)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state, f"http://127.0.0.1:{port}"
    state.release.set()
    await runner.cleanup()


def tool(base: str, path: str, timeout_s: float = 2.0) -> ToolPolicy:
    return ToolPolicy(
        name=path,
        endpoint=f"{base}/tools/{path}",
        parameters={"type": "object", "properties": {"account_id": {"type": "string"}}},
        allowed_roles=("caller",),
        timeout_s=timeout_s,
    )


async def test_the_arguments_are_posted_and_the_json_answer_is_the_result(
    crm: tuple[Crm, str], span_recorder: SpanRecorder
) -> None:
    state, base = crm
    tracer = span_recorder.provider.get_tracer("test")
    async with httpx.AsyncClient() as client:
        executor = ToolExecutor(
            ToolBook([tool(base, "lookup_account")]),
            HttpToolRunner(client),
            clock=SystemClock(),
            tracer=tracer,
        )
        with tracer.start_as_current_span("turn"):
            record = await executor.execute(
                CALL, ToolCallRequested("t1", "lookup_account", '{"account_id": "441729"}'), 0
            )
    assert record.status is ToolStatus.SUCCEEDED
    assert record.result_json == '{"account_id":"441729","name":"Dana"}'
    assert record.duration_s > 0
    ((body, headers),) = state.seen
    assert body == {"account_id": "441729"}
    assert headers["X-Trunkline-Call-Id"] == "CA7"
    assert headers["X-Trunkline-Tenant"] == "acme"
    assert headers["X-Trunkline-Caller-Role"] == "caller"
    span = span_recorder.named("tool")
    assert headers["traceparent"].split("-")[1] == format(span.context.trace_id, "032x")


async def test_error_status_timeout_and_non_json_are_run_errors(crm: tuple[Crm, str]) -> None:
    _, base = crm
    async with httpx.AsyncClient() as client:
        runner = HttpToolRunner(client)
        with pytest.raises(ToolRunError, match="answered HTTP 500: database down"):
            await runner.run(CALL, tool(base, "broken"), {})
        with pytest.raises(ToolRunError, match=r"did not answer within 0\.2s"):
            await runner.run(CALL, tool(base, "slow", timeout_s=0.2), {})
        with pytest.raises(ToolRunError, match="no JSON body"):
            await runner.run(CALL, tool(base, "text"), {})
        with pytest.raises(ToolRunError, match="unreachable"):
            await runner.run(CALL, tool("http://127.0.0.1:1", "lookup_account"), {})
