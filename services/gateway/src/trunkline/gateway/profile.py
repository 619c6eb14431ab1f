"""The gateway's view of an agent version (DESIGN.md §4).

Files are read and validated with the shared schema (``trunkline.agents``); the profile keeps
only what the gateway uses or forwards: greeting, filler/apology texts, voice, name and version,
system prompt, tools and sampling for the LLM, retrieval options for the context service, the
vocabulary that biases STT (the spec's and the terms derived from its texts and knowledge).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trunkline.agents import (
    AgentSpec,
    AgentSpecError,
    AnswerStrategy,
    Escalation,
    Grounding,
    Intents,
    TurnTakingPolicy,
    load_agents,
    parse_agent_spec,
)
from trunkline.agents.vocabulary import agent_vocabulary
from trunkline.gateway.core.entities import entity_names
from trunkline.gateway.core.replies import ReplyPolicy


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class VoiceProfile(_Lenient):
    name: str = ""
    language: str = "en-US"
    speaking_rate: float = Field(default=1.0, gt=0.0, le=3.0)


class SamplingProfile(_Lenient):
    temperature: float | None = None
    top_p: float | None = None
    max_reply_tokens: int = Field(default=0, ge=0)
    seed: int | None = None
    stop: tuple[str, ...] = ()


class ModelProfile(_Lenient):
    name: str = ""
    sampling: SamplingProfile = SamplingProfile()


class TokenBudgetProfile(_Lenient):
    prompt_tokens: int = Field(default=0, ge=0)


class ToolAnswerProfile(_Lenient):
    say: str
    when: dict[str, Any] = Field(default_factory=dict)


class ToolProfile(_Lenient):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    allowed_roles: tuple[str, ...] = ("*",)
    endpoint: str = ""
    risk: str = "low"
    timeout_s: float = Field(default=3.0, gt=0.0)
    fixed_arguments: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    max_calls_per_call: int | None = None
    max_calls_per_minute: int | None = None
    call_when_heard: bool = False
    answers: tuple[ToolAnswerProfile, ...] = ()

    @property
    def parameters_json(self) -> str:
        return json.dumps(self.parameters, separators=(",", ":"), sort_keys=True)


class LiveSourceProfile(_Lenient):
    name: str
    base_url: str = ""
    path: str = ""


class RetrievalProfile(_Lenient):
    top_k: int = Field(default=0, ge=0)
    rank_mode: str = ""
    token_budget: int = Field(default=0, ge=0)
    data_sources: tuple[str, ...] = ()
    min_confidence: float = Field(default=0.25, ge=0.0, le=1.0)  # below it: out of domain
    live_sources: tuple[LiveSourceProfile, ...] = ()

    @property
    def entity_names(self) -> tuple[str, ...]:
        """Call-state entities the context service's live sources need (their placeholders)."""
        return entity_names(s.path for s in self.live_sources)


class SttProfile(_Lenient):
    vocabulary: tuple[str, ...] = ()  # the whole biasing list: the spec's and the derived terms
    boost: float = Field(default=0.0, ge=0.0)


class AgentProfile(_Lenient):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    greeting: str = "Hello! How can I help you today?"
    filler_text: str = "One moment, please."
    apology_text: str = "Sorry, I am having trouble right now. Please bear with me."
    system_prompt: str = ""
    model: ModelProfile = ModelProfile()
    token_budget: TokenBudgetProfile = TokenBudgetProfile()
    voice: VoiceProfile = VoiceProfile()
    tools: tuple[ToolProfile, ...] = ()
    retrieval: RetrievalProfile = RetrievalProfile()
    escalation: Escalation = Escalation()
    grounding: Grounding = Grounding()
    intents: Intents = Intents()
    stt: SttProfile = SttProfile()
    turn_taking: TurnTakingPolicy = TurnTakingPolicy()
    dtmf: dict[str, str] = Field(default_factory=dict)  # keypad menu (trunkline.agents.dtmf)
    allowed_hosts: tuple[str, ...] = ()

    def tools_for_role(self, role: str) -> tuple[ToolProfile, ...]:
        """Tools a caller with ``role`` may trigger (so the only ones the model may see)."""
        return tuple(t for t in self.tools if role in t.allowed_roles or "*" in t.allowed_roles)


KNOWLEDGE_DIR = "knowledge"
KNOWLEDGE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})


def profile_of(spec: AgentSpec, knowledge: Sequence[str] = ()) -> AgentProfile:
    """The gateway's view of a validated agent spec (filler and apology texts included); its
    STT vocabulary is derived from the spec and ``knowledge`` (texts of its documents)."""
    data = spec.model_dump(mode="json")
    data["stt"] = {"vocabulary": agent_vocabulary(spec, knowledge), "boost": spec.stt.boost}
    return AgentProfile.model_validate(data)


def knowledge_texts(folder: Path) -> list[str]:
    """The text documents under an agent's knowledge folder (``<agents>/<name>/knowledge/``
    beside its spec, the layout ``trunkline kb ingest`` reads), for its STT vocabulary; none
    when there is no such folder."""
    if not folder.is_dir():
        return []
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in KNOWLEDGE_SUFFIXES)
    try:
        return [f.read_text(encoding="utf-8") for f in files if f.is_file()]
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentSpecError(
            f"{folder}: cannot read knowledge for the STT vocabulary: {exc}"
        ) from exc


def parse_profile(text: str, source: str = "<string>") -> AgentProfile:
    """Parse and validate one agent spec (``AgentSpecError`` names every problem)."""
    return profile_of(parse_agent_spec(text, source))


def load_profiles(path: Path) -> dict[str, AgentProfile]:
    """Profiles by agent name from one YAML file or every ``*.yaml``/``*.yml`` in a folder,
    through the one loader (``trunkline.agents.load_agents``: every bad file is an error)."""
    folder = path if path.is_dir() else path.parent
    return {
        name: profile_of(spec, knowledge_texts(folder / name / KNOWLEDGE_DIR))
        for name, spec in load_agents(path).items()
    }


def reply_policy(profile: AgentProfile) -> ReplyPolicy:
    """The agent's answers to intents and its knowledge strategy, for the turn's planner."""
    intents, grounding = profile.intents, profile.grounding
    return ReplyPolicy(
        intent_threshold=intents.threshold,
        deflection=intents.out_of_domain.reply,
        small_talk=intents.small_talk.reply,
        goodbye=intents.goodbye.reply,
        hang_up_at=intents.hang_up_at,
        anything_else=intents.anything_else,
        repeat=intents.repeat_reply,
        in_domain=intents.in_domain.reply if intents.in_domain is not None else "",
        min_stt_confidence=intents.min_stt_confidence,
        min_confidence=profile.retrieval.min_confidence,
        extractive=grounding.knowledge_answers is AnswerStrategy.EXTRACTIVE,
        confident_at=grounding.confident_at,
        max_answer_words=grounding.max_answer_words,
    )
