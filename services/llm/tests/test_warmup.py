"""Start-up warm-up: agent specs found in a directory, one short generation per agent with the
prompt a caller's turn gets, under its own deadline, the caller-facing policy restored after."""

from __future__ import annotations

import shutil
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from trunkline.agents import AgentSpecError
from trunkline.llm.backends import BackendUnavailableError, CallPolicy, LlmBackend
from trunkline.llm.core import BackendEvent, GenerationRequest, Stop, TextDelta, Usage
from trunkline.llm.warmup import WARMUP_DEADLINE_S, load_agents, warm_up

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[3] / "agents" / "acme-dental.yaml"


class RecordingBackend(LlmBackend):
    name = "recording"
    tool_mode = "text"

    def __init__(self, fail: bool = False) -> None:
        super().__init__(policy=CallPolicy(first_token_timeout_s=1.0, retries=2))
        self.fail = fail
        self.seen: list[tuple[GenerationRequest, CallPolicy]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        self.seen.append((request, self.policy))
        if self.fail:
            raise BackendUnavailableError("down")
        yield TextDelta("Hi")
        yield Usage(prompt_tokens=123, completion_tokens=1)
        yield Stop("length")


def test_load_agents_refuses_a_bad_file_and_skips_a_missing_directory(tmp_path: Path) -> None:
    shutil.copy(SAMPLE, tmp_path / "acme-dental.yaml")
    assert [s.ref for s in load_agents(tmp_path)] == ["acme-dental@1.0.0"]
    (tmp_path / "broken.yml").write_text("name: Not A Slug\n")
    with pytest.raises(AgentSpecError, match=r"broken\.yml:1: name"):
        load_agents(tmp_path)  # the one loader: as the gateway and the context service do
    assert load_agents(tmp_path / "missing") == []
    assert load_agents(None) == []


async def test_each_agent_prompt_runs_once_for_one_token() -> None:
    backend = RecordingBackend()
    spec = load_agents(SAMPLE.parent)[0]
    warmed = await warm_up(backend, [spec], model="served")
    assert [(w.agent, w.prompt_tokens) for w in warmed] == [("acme-dental@1.0.0", 123)]
    request, policy = backend.seen[0]
    assert request.sampling.max_tokens == 1
    assert request.model == "served"
    system = request.messages[0].content
    assert system.startswith(spec.system_prompt.strip())
    assert "lookup_account" in system  # the caller's tools, as real turns carry them
    assert "issue_refund" not in system  # an operator-only tool
    assert (policy.first_token_timeout_s, policy.retries) == (WARMUP_DEADLINE_S, 0)
    assert backend.policy == CallPolicy(first_token_timeout_s=1.0, retries=2)


async def test_a_failed_warm_up_is_skipped_and_the_policy_restored() -> None:
    backend = RecordingBackend(fail=True)
    assert await warm_up(backend, load_agents(SAMPLE.parent)) == []
    assert backend.policy == CallPolicy(first_token_timeout_s=1.0, retries=2)
