"""The LanguageModel gRPC surface on a real in-process server with a scripted backend (the real
ABC): proto -> domain mapping, the event stream, statuses for bad input and failing backends,
readiness, cancellation and CountTokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.llm.backends import BackendUnavailableError, CallPolicy, LlmBackend, LlmError
from trunkline.llm.convert import CONTEXT_HEADING, Limits
from trunkline.llm.core import (
    BackendEvent,
    GenerationRequest,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.proto.common.v1 import call_pb2, knowledge_pb2, tool_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration

CONTEXT = call_pb2.CallContext(
    tenant_id="acme",
    call_id="call-1",
    agent=call_pb2.AgentRef(name="acme-dental", version="1.0.0"),
    caller=call_pb2.Caller(role="caller"),
)
LOOKUP_SCHEMA = {
    "type": "object",
    "properties": {"account_id": {"type": "string"}},
    "required": ["account_id"],
}
LOOKUP = llm_pb2.ToolSchema(
    name="lookup_account",
    description="Look up an account.",
    parameters_json_schema=json.dumps(LOOKUP_SCHEMA),
)
Script = Sequence[BackendEvent | Exception | None]


class ScriptedBackend(LlmBackend):
    """Plays a script per generation (``None`` blocks until closed); one token per word."""

    name = "scripted"
    tool_mode = "native"

    def __init__(self, script: Script, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.requests: list[GenerationRequest] = []
        self.up = True
        self.blocked = asyncio.Event()
        self.closed = asyncio.Event()

    async def ready(self) -> bool:
        return self.up

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        self.requests.append(request)
        try:
            for item in self.script:
                if item is None:
                    self.blocked.set()
                    await asyncio.Event().wait()
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            self.closed.set()


@dataclass
class Served:
    stub: llm_pb2_grpc.LanguageModelStub
    health: health_pb2_grpc.HealthStub
    backend: ScriptedBackend
    servicer: LanguageModelService


REPLY: Script = [TextDelta("Hello "), TextDelta("there."), Usage(40, 2), Stop("stop")]


ServeScripted = Callable[..., Awaitable[Served]]


@pytest.fixture
def serve(start_llm: Any, scrape: Any) -> ServeScripted:
    """``await serve(script, warm=, model=, **policy)``: a server over a scripted backend."""

    async def start(
        script: Script = REPLY, *, warm: bool = True, model: str | None = None, **policy: Any
    ) -> Served:
        backend = ScriptedBackend(
            script,
            policy=CallPolicy(retries=0, retry_backoff_s=0.0, **policy),
            metrics=scrape.metrics,
        )
        options = ServingOptions(Limits(context_tokens=512, default_max_tokens=64), model=model)
        servicer = LanguageModelService(backend, options)
        if warm:
            servicer.mark_warm()
        channel = await start_llm(servicer)
        return Served(
            llm_pb2_grpc.LanguageModelStub(channel),
            health_pb2_grpc.HealthStub(channel),
            backend,
            servicer,
        )

    return start


@pytest.fixture
async def served(serve: ServeScripted) -> Served:
    return await serve()


def user(text: str) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text)


def request(
    *history: llm_pb2.ChatMessage,
    tools: Sequence[llm_pb2.ToolSchema] = (),
    context: call_pb2.CallContext = CONTEXT,
    sampling: llm_pb2.SamplingParams | None = None,
    system_prompt: str = "You are Ava.",
    **prompt: Any,
) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(
        context=context,
        prompt=llm_pb2.Prompt(
            system_prompt=system_prompt,
            history=list(history) or [user("Hi.")],
            tools=list(tools),
            **prompt,
        ),
        sampling=sampling,
    )


async def generate(
    stub: llm_pb2_grpc.LanguageModelStub, req: llm_pb2.GenerateRequest
) -> list[llm_pb2.GenerateResponse]:
    return [response async for response in stub.Generate(req)]


async def refused(stub: llm_pb2_grpc.LanguageModelStub, req: llm_pb2.GenerateRequest) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await generate(stub, req)
    return error.value


async def test_streams_deltas_then_done_with_usage_and_timing(served: Served) -> None:
    responses = await generate(served.stub, request(user("Hi.")))
    assert [r.WhichOneof("event") for r in responses] == ["delta", "delta", "done"]
    done = responses[-1].done
    assert done.text == "Hello there."
    assert done.finish_reason == llm_pb2.FINISH_REASON_STOP
    assert (done.usage.input_tokens, done.usage.output_tokens) == (40, 2)
    assert done.HasField("time_to_first_token")
    compile_ns = done.prompt_compile_time.ToNanoseconds()
    ttft_ns = done.time_to_first_token.ToNanoseconds()
    assert 0 < compile_ns < ttft_ns <= done.total_time.ToNanoseconds()
    assert done.model == "default"  # no served model, none requested


async def test_tool_calls_stream_as_tool_call_events(serve: ServeScripted) -> None:
    call = ToolCall("call_1", "lookup_account", '{"account_id":"7"}')
    script: Script = [
        TextDelta("Checking. "),
        ToolCallEvent(call),
        Usage(30, 9),
        Stop("tool_calls"),
    ]
    s = await serve(script)
    responses = await generate(s.stub, request(user("Account 7?"), tools=[LOOKUP]))
    assert [r.WhichOneof("event") for r in responses] == ["delta", "tool_call", "done"]
    assert responses[1].tool_call == tool_pb2.ToolCall(
        id="call_1", name="lookup_account", arguments_json='{"account_id":"7"}'
    )
    assert responses[-1].done.finish_reason == llm_pb2.FINISH_REASON_TOOL_CALLS
    assert s.backend.requests[0].tools[0].parameters == LOOKUP_SCHEMA
    assert s.backend.requests[0].tool_choice == "auto"


async def test_prompt_and_sampling_map_to_the_core_request(served: Served) -> None:
    past = tool_pb2.ToolCall(id="c1", name="lookup_account", arguments_json='{"account_id":"7"}')
    req = request(
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content="Hello, this", truncated=True),
        user("My account is 7."),
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, tool_calls=[past]),
        llm_pb2.ChatMessage(
            role=llm_pb2.ROLE_TOOL,
            content='{"balance": 40}',
            tool_call_id="c1",
            tool_name="lookup_account",
        ),
        user("And my next visit?"),
        tools=[LOOKUP],
        context_block=knowledge_pb2.ContextBlock(
            text="[1] We open at 8 am. (faq#hours)", citations=[knowledge_pb2.Citation(id="1")]
        ),
        sampling=llm_pb2.SamplingParams(
            model="agent-model", max_tokens=20, temperature=0.1, seed=3, stop=["\n\n", ""]
        ),
    )
    responses = await generate(served.stub, req)
    assert responses[-1].done.model == "agent-model"
    sent = served.backend.requests[0]
    assert [m.role for m in sent.messages] == [
        "system",
        "assistant",
        "user",
        "assistant",
        "tool",
        "system",
        "user",
    ]
    assert sent.messages[0].content.startswith("You are Ava.")
    context = sent.messages[-2].content
    # retrieved data reaches the prompt fenced as <data> (prompt-injection screens)
    assert context == f"<data>\n{CONTEXT_HEADING}\n[1] We open at 8 am. (faq#hours)\n</data>"
    assert sent.messages[1].content == "Hello, this"
    assert sent.messages[3].tool_calls == (ToolCall("c1", "lookup_account", '{"account_id":"7"}'),)
    assert (sent.messages[4].tool_call_id, sent.messages[4].name) == ("c1", "lookup_account")
    assert sent.messages[-1].content == "And my next visit?"
    assert (sent.sampling.max_tokens, sent.sampling.seed, sent.sampling.stop) == (20, 3, ("\n\n",))
    assert sent.sampling.temperature == pytest.approx(0.1)
    assert sent.model == "agent-model"


async def test_the_served_model_wins_and_unset_sampling_takes_defaults(
    serve: ServeScripted,
) -> None:
    s = await serve(model="served-model")
    req = request(sampling=llm_pb2.SamplingParams(model="agent-model"))
    responses = await generate(s.stub, req)
    assert responses[-1].done.model == "served-model"
    sent = s.backend.requests[0]
    assert sent.model == "served-model"
    assert sent.sampling.max_tokens == 64  # the service default
    assert (sent.sampling.temperature, sent.sampling.top_p) == (0.3, 0.9)


async def test_history_over_budget_drops_oldest_and_reports_it(served: Served) -> None:
    old = [user(f"old message number {i} with some words") for i in range(6)]
    responses = await generate(served.stub, request(*old, user("Now?"), max_prompt_tokens=40))
    done = responses[-1].done
    assert done.history_messages_dropped > 0
    assert len(served.backend.requests[0].messages) == 2 + 6 - done.history_messages_dropped


BAD_SCHEMA_JSON = llm_pb2.ToolSchema(name="lookup", parameters_json_schema="{not json")
NOT_OBJECT = llm_pb2.ToolSchema(name="lookup", parameters_json_schema='{"type": "string"}')
INVALID_SCHEMA = llm_pb2.ToolSchema(
    name="lookup", parameters_json_schema='{"type": "object", "properties": 5}'
)


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (request(context=call_pb2.CallContext(call_id="c")), "tenant_id is required"),
        (
            request(tools=[BAD_SCHEMA_JSON]),
            "prompt.tools[0] (lookup).parameters_json_schema is not JSON",
        ),
        (request(tools=[NOT_OBJECT]), "must be a JSON schema of an object"),
        (request(tools=[INVALID_SCHEMA]), "is not a valid JSON schema"),
        (request(tools=[LOOKUP, LOOKUP]), "duplicate tool names: lookup_account"),
        (request(tools=[llm_pb2.ToolSchema(name="bad name")]), "must match"),
        (request(system_prompt=""), "prompt.system_prompt is empty"),
        (request(llm_pb2.ChatMessage(content="x")), "prompt.history[0].role must be set"),
        (
            request(user("a"), llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content="b")),
            "the last message must be the caller's turn",
        ),
        (
            request(llm_pb2.ChatMessage(role=llm_pb2.ROLE_TOOL, content="{}")),
            "a ROLE_TOOL message needs tool_call_id",
        ),
        (
            request(
                llm_pb2.ChatMessage(
                    role=llm_pb2.ROLE_ASSISTANT,
                    tool_calls=[tool_pb2.ToolCall(id="c", name="x", arguments_json="[1]")],
                ),
                user("a"),
            ),
            "arguments must be a JSON object",
        ),
        (request(sampling=llm_pb2.SamplingParams(temperature=3)), "temperature 3 is outside"),
        (request(sampling=llm_pb2.SamplingParams(max_tokens=600)), "leaves no room for a prompt"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_problem(
    served: Served, req: llm_pb2.GenerateRequest, expected: str
) -> None:
    error = await refused(served.stub, req)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (error.details() or "")
    assert served.backend.requests == []


async def test_prompt_over_its_budget_is_refused_with_the_numbers(served: Served) -> None:
    long_prompt = " ".join(["word"] * 50)
    error = await refused(served.stub, request(system_prompt=long_prompt, max_prompt_tokens=20))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert "agent acme-dental@1.0.0" in details
    assert "over the budget of 20" in details
    assert "max_prompt_tokens 20, model context 512 minus max_tokens 64" in details


@pytest.mark.parametrize(
    ("script", "code", "policy"),
    [
        ([BackendUnavailableError("connection refused")], grpc.StatusCode.UNAVAILABLE, {}),
        ([None], grpc.StatusCode.DEADLINE_EXCEEDED, {"first_token_timeout_s": 0.05}),
        ([LlmError("HTTP 400: no such model")], grpc.StatusCode.INTERNAL, {}),
    ],
)
async def test_backend_failures_become_clear_statuses(
    serve: ServeScripted, script: Script, code: grpc.StatusCode, policy: dict[str, float]
) -> None:
    s = await serve(script, **policy)
    error = await refused(s.stub, request())
    assert error.code() == code
    assert "llm backend scripted failed" in (error.details() or "")


async def test_not_ready_until_warm_then_serving(serve: ServeScripted) -> None:
    s = await serve(warm=False)
    error = await refused(s.stub, request())
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "warming up" in (error.details() or "")
    watch = s.health.Watch(health_pb2.HealthCheckRequest(service=""))
    statuses = aiter(watch)
    first = await anext(statuses)
    assert first.status == health_pb2.HealthCheckResponse.NOT_SERVING
    s.servicer.mark_warm()
    second = await anext(statuses)
    assert second.status == health_pb2.HealthCheckResponse.SERVING
    s.backend.up = False  # e.g. the OpenAI-compatible server went away
    third = await anext(statuses)
    assert third.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


async def test_client_cancel_closes_the_backend_stream(serve: ServeScripted, scrape: Any) -> None:
    s = await serve([TextDelta("a"), None])
    call = s.stub.Generate(request())
    first = await call.read()
    assert first.delta.text == "a"
    await s.backend.blocked.wait()
    call.cancel()
    await asyncio.wait_for(s.backend.closed.wait(), 2.0)
    sample = scrape.sample("llm_generations_total", backend="scripted", outcome="cancelled")
    assert sample == 1


async def test_count_tokens_of_text_and_of_a_prompt(served: Served) -> None:
    text = await served.stub.CountTokens(
        llm_pb2.CountTokensRequest(context=CONTEXT, text="one two three")
    )
    assert text.token_count == 3
    old = [user(f"old message number {i} with some words") for i in range(6)]
    prompt = llm_pb2.Prompt(
        system_prompt="You are Ava.", history=[*old, user("Now?")], max_prompt_tokens=40
    )
    counted = await served.stub.CountTokens(
        llm_pb2.CountTokensRequest(context=CONTEXT, prompt=prompt, model="m")
    )
    generated = await generate(served.stub, llm_pb2.GenerateRequest(context=CONTEXT, prompt=prompt))
    done = generated[-1].done
    assert counted.model == "m"
    assert counted.history_messages_dropped == done.history_messages_dropped > 0
    assert 0 < counted.token_count <= 40
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await served.stub.CountTokens(llm_pb2.CountTokensRequest(context=CONTEXT))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_time_to_first_token_is_labelled_by_agent_version(
    served: Served, scrape: Any
) -> None:
    candidate = call_pb2.CallContext()
    candidate.CopyFrom(CONTEXT)
    candidate.agent.version, candidate.shadow = "1.1.0", True
    await generate(served.stub, request(user("Hi.")))
    await generate(served.stub, request(user("Hi."), context=candidate))
    await generate(served.stub, request(user("Hi."), context=candidate))

    def count(version: str, shadow: str) -> float | None:
        return scrape.sample(
            "llm_request_ttft_s_count", agent="acme-dental", version=version, shadow=shadow
        )

    assert (count("1.0.0", "false"), count("1.1.0", "true")) == (1, 2)
    assert count("1.1.0", "false") is None
