"""The LLM service over gRPC: ``Generate`` server stream -> text deltas, tool calls, usage.

The request carries the agent profile's system prompt, tools (those the caller's role may
trigger), sampling and token budget, the history as heard and the context block. Closing the
iterator (barge-in, call ended) cancels the RPC, which stops generation on the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
from opentelemetry import trace

from trunkline.gateway.core.events import Message
from trunkline.gateway.peers.base import LanguageModel, PeerEnv
from trunkline.gateway.peers.grpc_common import call_context, ms, rpc_errors, seconds
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    TextDelta,
    ToolCallRequested,
    ToolRound,
    Usage,
)
from trunkline.gateway.profile import AgentProfile
from trunkline.proto.common.v1 import knowledge_pb2, tool_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc


def chat_message(message: Message) -> llm_pb2.ChatMessage:
    role = llm_pb2.ROLE_USER if message.role == "user" else llm_pb2.ROLE_ASSISTANT
    return llm_pb2.ChatMessage(role=role, content=message.text, truncated=message.truncated)


def sampling_params(profile: AgentProfile) -> llm_pb2.SamplingParams:
    sampling = profile.model.sampling
    params = llm_pb2.SamplingParams(
        model=profile.model.name, max_tokens=sampling.max_reply_tokens, stop=list(sampling.stop)
    )
    if sampling.temperature is not None:
        params.temperature = sampling.temperature
    if sampling.top_p is not None:
        params.top_p = sampling.top_p
    if sampling.seed is not None:
        params.seed = sampling.seed
    return params


def tool_round_messages(tool_round: ToolRound) -> list[llm_pb2.ChatMessage]:
    """The assistant message that asked for the tools, then one ROLE_TOOL message per result."""
    calls = [
        tool_pb2.ToolCall(id=r.call_id, name=r.name, arguments_json=r.arguments_json)
        for r in tool_round.results
    ]
    messages = [
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=tool_round.text, tool_calls=calls)
    ]
    messages += [
        llm_pb2.ChatMessage(
            role=llm_pb2.ROLE_TOOL, content=r.result_json, tool_call_id=r.call_id, tool_name=r.name
        )
        for r in tool_round.results
    ]
    return messages


def context_block(context: ContextResult | None) -> knowledge_pb2.ContextBlock | None:
    if context is None or not context.block:
        return None
    return knowledge_pb2.ContextBlock(
        text=context.block,
        citations=[knowledge_pb2.Citation(id=c) for c in context.citations],
        token_count=context.token_count,
    )


def _prompt(
    profile: AgentProfile,
    call: CallInfo,
    history: list[llm_pb2.ChatMessage],
    block: knowledge_pb2.ContextBlock | None = None,
) -> llm_pb2.Prompt:
    tools = [
        llm_pb2.ToolSchema(
            name=tool.name,
            description=tool.description,
            parameters_json_schema=tool.parameters_json,
        )
        for tool in profile.tools_for_role(call.caller_role)
    ]
    return llm_pb2.Prompt(
        system_prompt=profile.system_prompt,
        history=history,
        context_block=block,
        tools=tools,
        max_prompt_tokens=profile.token_budget.prompt_tokens,
    )


def generate_request(profile: AgentProfile, request: LlmRequest) -> llm_pb2.GenerateRequest:
    history = [chat_message(m) for m in request.history]
    history.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=request.user_text))
    for tool_round in request.tool_rounds:
        history += tool_round_messages(tool_round)
    prompt = _prompt(profile, request.call, history, context_block(request.context))
    return llm_pb2.GenerateRequest(
        context=call_context(request.call), prompt=prompt, sampling=sampling_params(profile)
    )


def prefill_request(
    profile: AgentProfile,
    call: CallInfo,
    history: Sequence[Message],
    context: ContextResult | None = None,
    partial: str = "",
) -> llm_pb2.PrefillRequest:
    """The known part of the call's next prompt: what ``generate_request`` will send, up to the
    new user turn, or through it as far as it was heard (``partial``) when read ahead."""
    messages = [chat_message(m) for m in history]
    if partial:
        messages.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=partial))
    prompt = _prompt(profile, call, messages, context_block(context))
    return llm_pb2.PrefillRequest(
        context=call_context(call), prompt=prompt, sampling=sampling_params(profile)
    )


def prefilled(response: llm_pb2.PrefillResponse) -> Prefilled:
    return Prefilled(
        evaluated_tokens=int(response.evaluated_tokens),
        reused_tokens=int(response.reused_tokens),
        completed=response.completed,
    )


class GrpcLanguageModel(LanguageModel):
    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        profile: AgentProfile,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self._stub = llm_pb2_grpc.LanguageModelStub(channel)
        self._profile = profile

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        stream = self._stub.Generate(generate_request(self._profile, request))
        try:
            with rpc_errors(self.stage):
                async for response in stream:
                    if (event := llm_event(response)) is not None:
                        yield event
        finally:
            stream.cancel()  # no-op after the end; stops generation when closed early

    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled:
        request = prefill_request(self._profile, call, history, context, partial)
        with rpc_errors(self.stage):
            return prefilled(await self._stub.Prefill(request))


def llm_event(response: llm_pb2.GenerateResponse) -> LlmEvent | None:
    """One Generate message as the gateway's event (None: an empty delta)."""
    match response.WhichOneof("event"):
        case "delta":
            return TextDelta(response.delta.text) if response.delta.text else None
        case "tool_call":
            call = response.tool_call
            return ToolCallRequested(call.id, call.name, call.arguments_json)
        case "done":
            return _usage(response.done)
    return None


def _usage(done: llm_pb2.GenerateDone) -> Usage:
    span = trace.get_current_span()
    span.set_attribute("llm.server_ttft_ms", ms(done.time_to_first_token))
    span.set_attribute("llm.prompt_compile_ms", ms(done.prompt_compile_time))
    span.set_attribute("llm.total_ms", ms(done.total_time))
    span.set_attribute("llm.model", done.model)
    span.set_attribute("llm.finish_reason", llm_pb2.FinishReason.Name(done.finish_reason))
    span.set_attribute("llm.history_dropped", done.history_messages_dropped)
    span.set_attribute("llm.prompt_tokens", done.usage.input_tokens)
    span.set_attribute("llm.completion_tokens", done.usage.output_tokens)
    compile_s = seconds(done.prompt_compile_time) if done.HasField("prompt_compile_time") else None
    return Usage(
        prompt_tokens=int(done.usage.input_tokens),
        completion_tokens=int(done.usage.output_tokens),
        prompt_compile_s=compile_s,
        cached_prompt_tokens=int(done.usage.cached_input_tokens),
    )
