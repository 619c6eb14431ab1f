# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""gRPC surface of llm: ``trunkline.llm.v1.LanguageModel`` (proto <-> domain only).

``Prefill`` compiles the known part of a call's next prompt (no context block, no new turn) and
has the backend evaluate it while the caller speaks; the next ``Generate`` then reuses it.
``Generate`` compiles the prompt (timed: ``GenerateDone.prompt_compile_time``), streams the
backend's text deltas and tool calls, then one ``GenerateDone`` with usage, TTFT and total time,
all measured from receipt of the request. Cancelling the RPC (barge-in) closes the backend's
stream, which stops the model within a token. Statuses: bad input and a prompt over its token
budget are ``INVALID_ARGUMENT`` naming the problem (and the numbers); a model still loading or a
backend that is down is ``UNAVAILABLE``; no first token in time is ``DEADLINE_EXCEEDED``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace
from opentelemetry.trace import Tracer

from trunkline.llm.backends import (
    BackendUnavailableError,
    GenerationTimeoutError,
    LlmBackend,
    LlmError,
)
from trunkline.llm.convert import (
    BadRequestError,
    Limits,
    agent_label,
    prefill_parts,
    prompt_parts,
    sampling_params,
)
from trunkline.llm.core import (
    CompiledPrompt,
    Done,
    HistoryPolicy,
    PromptBudgetError,
    PromptLayout,
    TextDelta,
    ToolCallEvent,
    compile_prompt,
)
from trunkline.llm.core.history import DEFAULT as DEFAULT_HISTORY
from trunkline.proto.common.v1 import call_pb2, tool_pb2, usage_pb2
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc
from trunkline.runtime import service_name

Ctx = grpc.aio.ServicerContext[Any, Any]

_FINISH: dict[str, llm_pb2.FinishReason.ValueType] = {
    "stop": llm_pb2.FINISH_REASON_STOP,
    "length": llm_pb2.FINISH_REASON_LENGTH,
    "tool_calls": llm_pb2.FINISH_REASON_TOOL_CALLS,
    "content_filter": llm_pb2.FINISH_REASON_CONTENT_FILTER,
}


@dataclass(frozen=True, slots=True)
class ServingOptions:
    """``model``: the model every generation uses and reports (``LLM_MODEL``, or the GGUF's
    name); None: the request's ``SamplingParams.model``."""

    limits: Limits
    model: str | None = None
    layout: PromptLayout = "stable_prefix"
    history: HistoryPolicy = DEFAULT_HISTORY


@dataclass(frozen=True, slots=True)
class Compiled:
    prompt: CompiledPrompt
    compile_s: float
    model: str


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return value


def tool_call_pb(event: ToolCallEvent) -> tool_pb2.ToolCall:
    call = event.call
    return tool_pb2.ToolCall(id=call.id, name=call.name, arguments_json=call.arguments)


def _version(request: llm_pb2.GenerateRequest) -> dict[str, str]:
    """The labels of per-version series (as the gateway's and the shadow runners')."""
    agent = request.context.agent
    shadow = str(request.context.shadow).lower()
    return {"agent": agent.name, "version": agent.version, "shadow": shadow}


class LanguageModelService(llm_pb2_grpc.LanguageModelServicer):
    """Prompt compilation and streaming generation over one backend.

    Ready (health SERVING) once :meth:`mark_warm` was called and the backend is ready.
    """

    def __init__(
        self, backend: LlmBackend, options: ServingOptions, *, tracer: Tracer | None = None
    ) -> None:
        self.backend = backend
        self.options = options
        self._tracer = tracer or trace.get_tracer("trunkline.llm")
        self._warm = False

    def mark_warm(self) -> None:
        """The model is loaded and its prompts are warm: readiness may follow the backend."""
        self._warm = True

    async def ready(self) -> bool:
        return self._warm and await self.backend.ready()

    async def Generate(
        self, request: llm_pb2.GenerateRequest, context: Ctx
    ) -> AsyncIterator[llm_pb2.GenerateResponse]:
        received = time.perf_counter()
        await self._require_ready(context)
        compiled = await self._compile(request.prompt, request.sampling, request.context, context)
        first_s: float | None = None
        text: list[str] = []
        done: Done | None = None
        try:
            async with aclosing(self.backend.generate(compiled.prompt.request)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        done = event
                        continue
                    if first_s is None:
                        first_s = time.perf_counter() - received
                        self.backend.metrics.request_ttft.record(first_s, _version(request))
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                        yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=event.text))
                    else:
                        yield llm_pb2.GenerateResponse(tool_call=tool_call_pb(event))
        except LlmError as exc:
            await self._backend_failed(context, exc)
        total_s = time.perf_counter() - received
        yield llm_pb2.GenerateResponse(
            done=self._done(compiled, done, "".join(text), first_s, total_s)
        )

    async def Prefill(
        self, request: llm_pb2.PrefillRequest, context: Ctx
    ) -> llm_pb2.PrefillResponse:
        received = time.perf_counter()
        await self._require_ready(context)
        compiled = await self._compile(
            request.prompt, request.sampling, request.context, context, prefill=True
        )
        with self._tracer.start_as_current_span("llm.prefill") as span:
            try:
                result = await self.backend.prefill(compiled.prompt.request)
            except LlmError as exc:
                await self._backend_failed(context, exc)
            span.set_attribute("gen_ai.usage.input_tokens", result.prompt_tokens)
            span.set_attribute("llm.prompt_tokens_evaluated", result.evaluated)
            span.set_attribute("llm.prompt_tokens_cached", result.reused)
            span.set_attribute("llm.prefill_completed", result.completed)
        return llm_pb2.PrefillResponse(
            prompt_tokens=result.prompt_tokens,
            evaluated_tokens=result.evaluated,
            reused_tokens=result.reused,
            completed=result.completed,
            total_time=duration(time.perf_counter() - received),
        )

    async def CountTokens(
        self, request: llm_pb2.CountTokensRequest, context: Ctx
    ) -> llm_pb2.CountTokensResponse:
        await self._require_ready(context)
        kind = request.WhichOneof("input")
        if kind == "text":
            return llm_pb2.CountTokensResponse(
                token_count=self.backend.count_tokens(request.text),
                model=self.options.model or request.model,
            )
        if kind != "prompt":
            await _invalid(context, "set input: text or prompt")
        sampling = llm_pb2.SamplingParams(model=request.model)
        compiled = await self._compile(request.prompt, sampling, request.context, context)
        return llm_pb2.CountTokensResponse(
            token_count=compiled.prompt.prompt_tokens,
            model=compiled.model,
            history_messages_dropped=compiled.prompt.history_dropped,
        )

    async def _compile(
        self,
        prompt: llm_pb2.Prompt,
        sampling_pb: llm_pb2.SamplingParams,
        call: call_pb2.CallContext,
        context: Ctx,
        *,
        prefill: bool = False,
    ) -> Compiled:
        started = time.perf_counter()
        limits = self.options.limits
        model = self.options.model or sampling_pb.model or None
        build = prefill_parts if prefill else prompt_parts
        with self._tracer.start_as_current_span("llm.prompt_compile") as span:
            try:
                sampling = sampling_params(sampling_pb, limits)
                parts = build(prompt, sampling, limits, model=model, label=agent_label(call))
                compiled = compile_prompt(
                    parts,
                    self.backend.count_tokens,
                    tool_mode=self.backend.tool_mode,
                    message_overhead=self.backend.message_overhead,
                    layout=self.options.layout,
                    history_policy=self.options.history,
                )
                if not prefill and parts.user_text is None and compiled.history_kept == 0:
                    raise PromptBudgetError(
                        f"{parts.label}: the tool result to answer does not fit the budget of "
                        f"{parts.max_prompt_tokens} prompt tokens"
                    )
            except BadRequestError as exc:
                await _invalid(context, str(exc))
            except PromptBudgetError as exc:
                await _invalid(
                    context,
                    f"prompt over its token budget: {exc} (max_prompt_tokens "
                    f"{prompt.max_prompt_tokens or 'unset'}, model context "
                    f"{limits.context_tokens} minus max_tokens {sampling.max_tokens})",
                )
            span.set_attribute("llm.prompt_tokens", compiled.prompt_tokens)
            span.set_attribute("llm.history_dropped", compiled.history_dropped)
            span.set_attribute("llm.history_summarized", compiled.history_summarized)
            span.set_attribute("llm.tools", len(parts.tools))
            if sampling_pb.model and model != sampling_pb.model:
                span.set_attribute("llm.requested_model", sampling_pb.model)
        return Compiled(compiled, time.perf_counter() - started, model or "default")

    def _done(
        self,
        compiled: Compiled,
        done: Done | None,
        text: str,
        first_s: float | None,
        total_s: float,
    ) -> llm_pb2.GenerateDone:
        usage = done.usage if done is not None else None
        message = llm_pb2.GenerateDone(
            finish_reason=_FINISH.get(
                done.finish_reason if done is not None else "", llm_pb2.FINISH_REASON_UNSPECIFIED
            ),
            usage=usage_pb2.Usage(
                input_tokens=usage.prompt_tokens if usage else compiled.prompt.prompt_tokens,
                output_tokens=usage.completion_tokens if usage else 0,
                cached_input_tokens=usage.cached_prompt_tokens if usage else 0,
            ),
            prompt_compile_time=duration(compiled.compile_s),
            total_time=duration(total_s),
            model=compiled.model,
            history_messages_dropped=compiled.prompt.history_dropped,
            history_messages_summarized=compiled.prompt.history_summarized,
            text=text,
        )
        if first_s is not None:
            message.time_to_first_token.CopyFrom(duration(first_s))
        return message

    async def _require_ready(self, context: Ctx) -> None:
        if not await self.ready():
            state = "warming up" if await self.backend.ready() else "not ready"
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"llm backend {self.backend.name} is {state} (model loading or server down)",
            )

    async def _backend_failed(self, context: Ctx, exc: LlmError) -> NoReturn:
        if isinstance(exc, GenerationTimeoutError):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        elif isinstance(exc, BackendUnavailableError):
            code = grpc.StatusCode.UNAVAILABLE
        else:
            code = grpc.StatusCode.INTERNAL
        await context.abort(code, f"llm backend {self.backend.name} failed: {exc}")
        raise AssertionError("unreachable")  # context.abort always raises


async def _invalid(context: Ctx, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("unreachable")


LANGUAGE_MODEL = service_name(LanguageModelService)


def register(server: grpc.aio.Server, servicer: LanguageModelService) -> None:
    llm_pb2_grpc.add_LanguageModelServicer_to_server(servicer, server)
