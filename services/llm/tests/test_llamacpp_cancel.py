"""The llama.cpp worker with the real SmolLM2 model: a cancel during prompt evaluation frees the
worker within one chunk, a request cancelled while queued never evaluates, consecutive turns
reuse the prompt prefix, and an agent's saved prefix state comes back after another agent ran."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from trunkline.agents import AgentSpec, load_agent_spec
from trunkline.llm.backends import CallPolicy
from trunkline.llm.backends.llamacpp import (
    PREFILL_CHUNK,
    End,
    Job,
    LlamaCppBackend,
    LlamaCppConfig,
    smollm2_model_path,
)
from trunkline.llm.core import (
    ChatMessage,
    Done,
    GenerationRequest,
    SamplingParams,
    TextDelta,
    compile_prompt,
    prompt_from_spec,
)

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"
WAIT_S = 30.0


class Watched(LlamaCppBackend):
    """Records each job and chunk; with ``hold`` set, the first chunk waits for ``release``."""

    def __init__(self, config: LlamaCppConfig, *, hold: bool = False) -> None:
        # a loaded 2-core machine can take seconds for a cold prompt: no deadline, no retry
        super().__init__(config, policy=CallPolicy(first_token_timeout_s=WAIT_S, retries=0))
        self.built: list[asyncio.Event] = [asyncio.Event() for _ in range(4)]
        self.requests = 0
        self.hold = hold
        self.jobs: list[Job] = []
        self.ends: list[End] = []
        self.chunks: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.cancel_flags: list[threading.Event] = []

    def _job(self, request: GenerationRequest) -> Job:
        job = super()._job(request)  # the job is submitted to the worker right after this
        self.built[min(self.requests, 3)].set()
        self.requests += 1
        return job

    def _generate(self, job: Job, cancel: threading.Event, put: Callable[[Any], None]) -> End:
        self.jobs.append(job)
        self.cancel_flags.append(cancel)
        end = super()._generate(job, cancel, put)
        self.ends.append(end)
        return end

    def _eval_chunk(self, tokens: list[int]) -> None:
        self.chunks.append(len(tokens))
        self.entered.set()
        if self.hold and len(self.chunks) == 1:
            assert self.release.wait(WAIT_S)
        super()._eval_chunk(tokens)


async def started(config: LlamaCppConfig, *, hold: bool = False) -> Watched:
    backend = Watched(config, hold=hold)
    await backend.start()
    return backend


@pytest.fixture
async def closing() -> AsyncIterator[list[LlamaCppBackend]]:
    opened: list[LlamaCppBackend] = []
    yield opened
    for backend in opened:
        if isinstance(backend, Watched):
            backend.release.set()
        await backend.aclose()


def long_request(words: int = 400) -> GenerationRequest:
    story = " ".join(f"word{i}" for i in range(words))
    return GenerationRequest(
        messages=(ChatMessage("system", "You are brief."), ChatMessage("user", story)),
        sampling=SamplingParams(max_tokens=8, temperature=0.0),
    )


def turn(spec: AgentSpec, llama: LlamaCppBackend, history: list[ChatMessage], text: str) -> Any:
    parts = prompt_from_spec(spec, history, text)
    parts = replace(parts, sampling=replace(parts.sampling, max_tokens=6, temperature=0.0))
    return compile_prompt(
        parts, llama.count_tokens, tool_mode="text", message_overhead=llama.message_overhead
    ).request


async def run(llama: LlamaCppBackend, request: GenerationRequest) -> tuple[str, Done]:
    events = [e async for e in llama.generate(request)]
    done = events[-1]
    assert isinstance(done, Done)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), done


async def consume(llama: LlamaCppBackend, request: GenerationRequest) -> None:
    async for _ in llama.generate(request):
        pass


async def test_cancel_during_prompt_evaluation_frees_the_worker_within_one_chunk(
    closing: list[LlamaCppBackend],
) -> None:
    config = LlamaCppConfig(smollm2_model_path(), eval_chunk=32, prefix_states=0)
    llama = await started(config, hold=True)
    closing.append(llama)
    task = asyncio.create_task(consume(llama, long_request()))
    assert await asyncio.to_thread(llama.entered.wait, WAIT_S)  # the first chunk is running
    task.cancel()
    # the consumer's close sets the flag while the worker is still inside that chunk
    assert await asyncio.to_thread(llama.cancel_flags[0].wait, WAIT_S)
    llama.release.set()
    with suppress(asyncio.CancelledError):
        await task
    await asyncio.wait_for(llama.wait_idle(), WAIT_S)
    assert llama.chunks == [32]  # of ~400 prompt tokens: no chunk began after the cancel
    assert llama.ends[0].reason == "cancelled"
    assert llama.ends[0].completion_tokens == 0


async def test_a_request_cancelled_while_queued_never_evaluates(
    closing: list[LlamaCppBackend],
) -> None:
    config = LlamaCppConfig(smollm2_model_path(), eval_chunk=32, prefix_states=0)
    llama = await started(config, hold=True)
    closing.append(llama)
    busy = asyncio.create_task(consume(llama, long_request(40)))
    assert await asyncio.to_thread(llama.entered.wait, WAIT_S)
    queued = asyncio.create_task(consume(llama, long_request(300)))
    await llama.built[1].wait()  # in the worker's queue, behind the held request
    queued.cancel()
    with suppress(asyncio.CancelledError):
        await asyncio.wait_for(queued, WAIT_S)  # returns while the worker is still busy
    assert not llama.release.is_set()
    llama.release.set()
    await asyncio.wait_for(busy, WAIT_S)
    await asyncio.wait_for(llama.wait_idle(), WAIT_S)
    assert len(llama.jobs) == 1  # the cancelled request never reached the model
    assert llama.ends[0].reason != "cancelled"


async def test_turns_reuse_the_prefix_and_a_saved_agent_prefix_comes_back(
    closing: list[LlamaCppBackend],
) -> None:
    config = LlamaCppConfig(smollm2_model_path(), eval_chunk=64, prefix_states=4)
    llama = await started(config)
    fresh = await started(replace(config, prefix_states=0))
    closing += [llama, fresh]
    acme = load_agent_spec(SAMPLE)
    other = acme.model_copy(
        update={"system_prompt": "You are Max of Beta Plumbing. " * 12, "tools": []}
    )
    history = [ChatMessage("assistant", acme.greeting)]

    first = turn(acme, llama, history, "When are you open?")
    _, done = await run(llama, first)
    assert done.usage is not None
    assert done.usage.cached_prompt_tokens == 0
    stable = llama.jobs[0].stable
    assert 300 < stable < done.usage.prompt_tokens  # system prompt and tool instructions

    history += [ChatMessage("user", "When are you open?"), ChatMessage("assistant", "8 to 6.")]
    _, done = await run(llama, turn(acme, llama, history, "And on Saturday?"))
    assert done.usage is not None
    assert done.usage.cached_prompt_tokens > stable  # the history of the last turn too

    await run(llama, turn(other, llama, [], "Hello?"))  # another agent takes the KV cache
    _, done = await run(llama, first)
    assert done.usage is not None
    assert done.usage.cached_prompt_tokens == stable  # restored from the saved state
    restored, _ = await run(llama, first)
    evaluated, done = await run(fresh, first)
    assert done.usage is not None
    assert done.usage.cached_prompt_tokens == 0
    assert restored == evaluated  # greedy: the restored state gives the same reply


def known_part(spec: AgentSpec, llama: LlamaCppBackend, history: list[ChatMessage]) -> Any:
    """What the gateway prefills while the caller speaks: system, tools and history only."""
    parts = prompt_from_spec(spec, history, None)
    return compile_prompt(
        parts, llama.count_tokens, tool_mode="text", message_overhead=llama.message_overhead
    ).request


def with_context(request: GenerationRequest, facts: str) -> GenerationRequest:
    """The turn's prompt as the stable layout builds it: the context block before the turn."""
    *head, user = request.messages
    return replace(request, messages=(*head, ChatMessage("system", facts), user))


async def test_a_prefill_leaves_only_the_context_and_the_new_turn_to_evaluate(
    closing: list[LlamaCppBackend],
) -> None:
    config = LlamaCppConfig(smollm2_model_path(), eval_chunk=32, prefix_states=4)
    llama = await started(config)
    closing.append(llama)
    acme = load_agent_spec(SAMPLE)
    history = [ChatMessage("assistant", acme.greeting)]
    hours = "Facts you may use:\n[1] Open Monday to Friday, 8 am to 6 pm."
    await run(llama, with_context(turn(acme, llama, history, "When are you open?"), hours))
    history += [
        ChatMessage("user", "When are you open?"),
        ChatMessage("assistant", "We are open from eight to six, Monday to Friday."),
    ]

    prefilled = await llama.prefill(known_part(acme, llama, history))
    assert prefilled.completed
    assert prefilled.evaluated > 20  # the last turn: the cache holds its context block there
    assert prefilled.reused + prefilled.evaluated == prefilled.prompt_tokens - 1

    facts = "Facts you may use:\n[1] Saturday hours are 9 am to 1 pm."
    request = with_context(turn(acme, llama, history, "And on Saturday?"), facts)
    _, done = await run(llama, request)
    assert done.usage is not None
    # all of the prefilled prompt but its generation header ("<|im_start|>assistant\n")
    assert done.usage.cached_prompt_tokens >= prefilled.prompt_tokens - 3
    again = await llama.prefill(known_part(acme, llama, history))
    assert again.completed
    assert again.evaluated <= 3  # nothing new to evaluate: only the header


async def test_a_generation_takes_the_model_over_from_a_prefill(
    closing: list[LlamaCppBackend],
) -> None:
    config = LlamaCppConfig(smollm2_model_path(), eval_chunk=32, prefix_states=0)
    llama = await started(config, hold=True)
    closing.append(llama)
    story = " ".join(f"word{i}" for i in range(300))
    history = [ChatMessage("system", "You are brief."), ChatMessage("user", story)]
    prefill = asyncio.create_task(llama.prefill(GenerationRequest(messages=tuple(history))))
    assert await asyncio.to_thread(llama.entered.wait, WAIT_S)  # its first chunk is running
    request = GenerationRequest(
        messages=(*history, ChatMessage("assistant", "Noted."), ChatMessage("user", "Hi?")),
        sampling=SamplingParams(max_tokens=4, temperature=0.0),
    )
    generation = asyncio.create_task(run(llama, request))
    await llama.built[0].wait()  # the generation was submitted: the prefill is told to stop
    llama.release.set()
    prefilled = await asyncio.wait_for(prefill, WAIT_S)
    _, done = await asyncio.wait_for(generation, WAIT_S)
    assert not prefilled.completed
    assert prefilled.evaluated == PREFILL_CHUNK  # it stopped after the chunk it was in
    assert done.usage is not None
    assert done.usage.cached_prompt_tokens == PREFILL_CHUNK  # the generation went on from there


async def test_the_first_tokens_run_on_more_threads_then_the_configured_ones(
    closing: list[LlamaCppBackend],
) -> None:
    import llama_cpp  # noqa: PLC0415

    config = LlamaCppConfig(
        smollm2_model_path(), n_threads=1, first_tokens=3, first_tokens_threads=2, prefix_states=0
    )
    llama = await started(config)
    closing.append(llama)
    seen: list[int] = []
    original = llama._set_threads

    def record(threads: int) -> None:
        seen.append(threads)
        original(threads)

    llama._set_threads = record  # type: ignore[method-assign]
    request = replace(long_request(20), sampling=SamplingParams(max_tokens=8, temperature=0.0))
    _, done = await run(llama, request)
    assert done.usage is not None
    assert done.usage.completion_tokens > 3
    assert seen == [2, 1]  # two threads for the first three tokens, then one
    assert llama_cpp.llama_n_threads(llama._llm.ctx) == 1
