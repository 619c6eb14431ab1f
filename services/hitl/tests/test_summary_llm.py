"""The llm summary backend against a stand-in with the shape of an OpenAI-compatible server
(vLLM's /v1/chat/completions) on loopback: the transcript goes in, the reply is the summary;
a failing or slow server falls back to the extractive summary."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trunkline.hitl.backends.summary import LlmSummarizer
from trunkline.hitl.core.tickets import Line

pytestmark = pytest.mark.integration

LINES = [
    Line("agent", "How can I help?"),
    Line("caller", "My refund never arrived. I want to talk to a real person."),
]


class StandIn:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        if self.mode == "error":
            return JSONResponse({"error": {"message": "model not loaded"}}, status_code=503)
        if self.mode == "slow":
            await asyncio.sleep(2)
        return JSONResponse(
            {
                "id": "cmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": " Refund missing; wants a person. ",
                        },
                        "finish_reason": "stop",
                    }
                ],
            }
        )


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    fake = StandIn()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises why it did not start
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_llm_summary_is_the_models_reply(stand_in: tuple[StandIn, str]) -> None:
    fake, url = stand_in
    summarizer = LlmSummarizer(url, "smollm2", timeout=1.0)
    try:
        assert await summarizer.summarize(LINES, "caller_request") == (
            "Refund missing; wants a person."
        )
    finally:
        await summarizer.close()
    (sent,) = fake.requests
    assert sent["model"] == "smollm2"
    assert sent["messages"][0]["role"] == "system"
    assert "caller: My refund never arrived." in sent["messages"][1]["content"]
    assert "Reason: caller_request" in sent["messages"][1]["content"]


@pytest.mark.parametrize("mode", ["error", "slow"])
async def test_a_failing_or_slow_model_falls_back_to_extractive(
    stand_in: tuple[StandIn, str], mode: str
) -> None:
    fake, url = stand_in
    fake.mode = mode
    summarizer = LlmSummarizer(url, "smollm2", timeout=0.3)
    try:
        summary = await summarizer.summarize(LINES, "caller_request")
    finally:
        await summarizer.close()
    assert summary.startswith("Escalated: caller request. Caller: ")
    assert "real person" in summary


def test_the_llm_backend_needs_a_url() -> None:
    with pytest.raises(ValueError, match="HITL_SUMMARY_LLM_URL"):
        LlmSummarizer("", "m")
