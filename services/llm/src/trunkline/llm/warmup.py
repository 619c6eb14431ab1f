"""Start-up: load the model, then run each known agent's prompt once.

The first generation of a prompt pays for evaluating all of it (SmolLM2 on 2 cores: seconds for
a ~430-token agent prompt). llama.cpp keeps the evaluated tokens and reuses the longest common
prefix on the next request, and vLLM caches prefixes too, so one short generation per agent
(its system prompt and the tools a caller may trigger) moves that cost out of the first call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from trunkline import agents
from trunkline.agents import AgentSpec
from trunkline.agents.cluster import ClusterAgents, api_client
from trunkline.llm.backends import LlmBackend
from trunkline.llm.core import GenerationRequest, compile_prompt, prompt_from_spec
from trunkline.llm.settings import LlmSettings

log = logging.getLogger(__name__)

WARMUP_TURN = "Hello."
CALLER_ROLE = "caller"
WARMUP_DEADLINE_S = 120.0
"""A cold prompt on a busy CPU can take longer than a caller's first-token deadline."""


@dataclass(frozen=True, slots=True)
class Warmed:
    agent: str
    prompt_tokens: int
    seconds: float


def load_agents(directory: Path | None) -> list[AgentSpec]:
    """Every agent spec in ``directory``, through the one loader (``trunkline.agents``): a bad
    file is an error naming it and its line (the service does not start with half its agents);
    no directory: nothing to warm."""
    if directory is None or not directory.exists():
        if directory is not None:
            log.info("llm: no agents directory at %s, nothing to warm", directory)
        return []
    return list(agents.load_agents(directory).values())


async def agents_to_warm(settings: LlmSettings) -> list[AgentSpec]:
    """Files (``LLM_AGENTS_DIR``), or each agent's active, validated ``VoiceAgent`` in
    ``LLM_AGENTS_NAMESPACE`` (``LLM_AGENTS_SOURCE=cluster``), read once at start."""
    if settings.agents_source == "files":
        return load_agents(settings.agents_dir)
    source = ClusterAgents(api_client(settings.kubeconfig), settings.agents_namespace)
    try:
        return list((await source.active()).values())
    finally:
        source.api.close()  # type: ignore[no-untyped-call]


def warmup_request(spec: AgentSpec, backend: LlmBackend, model: str | None) -> GenerationRequest:
    """A one-token turn of ``spec`` for a caller, compiled as the server compiles real turns."""
    parts = prompt_from_spec(spec, (), WARMUP_TURN, caller_role=CALLER_ROLE)
    parts = replace(
        parts,
        sampling=replace(parts.sampling, max_tokens=1, temperature=0.0),
        model=model or parts.model,
    )
    compiled = compile_prompt(
        parts,
        backend.count_tokens,
        tool_mode=backend.tool_mode,
        message_overhead=backend.message_overhead,
    )
    return compiled.request


async def warm_up(
    backend: LlmBackend, specs: Sequence[AgentSpec], model: str | None = None
) -> list[Warmed]:
    """Run each agent's prompt once; a failure is logged and does not stop the others.

    Runs before the service is ready, under its own deadline and without retries.
    """
    saved = backend.policy
    backend.policy = replace(
        saved, first_token_timeout_s=WARMUP_DEADLINE_S, total_timeout_s=WARMUP_DEADLINE_S, retries=0
    )
    try:
        return await _warm_each(backend, specs, model)
    finally:
        backend.policy = saved


async def _warm_each(
    backend: LlmBackend, specs: Sequence[AgentSpec], model: str | None
) -> list[Warmed]:
    done: list[Warmed] = []
    for spec in specs:
        started = time.perf_counter()
        try:
            request = warmup_request(spec, backend, model)
            events = [event async for event in backend.generate(request)]
        except Exception:
            log.exception("llm: warming agent %s failed", spec.ref)
            continue
        seconds = time.perf_counter() - started
        last = events[-1] if events else None
        usage = getattr(last, "usage", None)
        tokens = usage.prompt_tokens if usage is not None else 0
        done.append(Warmed(spec.ref, tokens, seconds))
        log.info(
            "llm: warmed agent prompt",
            extra={"agent": spec.ref, "prompt_tokens": tokens, "ms": round(seconds * 1000, 1)},
        )
    return done


async def start_backend(
    backend: LlmBackend, *, max_wait_s: float = 2.0, poll_s: float = 0.1
) -> None:
    """Start the backend and wait until it answers (a remote server may come up later)."""
    await backend.start()
    wait = poll_s
    while not await backend.ready():
        await asyncio.sleep(wait)
        wait = min(wait * 2, max_wait_s)
