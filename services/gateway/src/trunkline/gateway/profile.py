"""The gateway's view of an agent version (DESIGN.md §4).

Files are read and validated with the shared schema (``trunkline.agents``); the profile keeps
only what the gateway uses or forwards: greeting, filler/apology texts, voice, name and version,
system prompt, tools and sampling for the LLM, retrieval options for the context service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trunkline.agents import AgentSpec, AgentSpecError, load_agent_spec, parse_agent_spec
from trunkline.gateway.core.entities import entity_names


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


class ToolProfile(_Lenient):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    allowed_roles: tuple[str, ...] = ("*",)
    endpoint: str = ""
    risk: str = "low"
    timeout_s: float = Field(default=3.0, gt=0.0)

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


class EscalationProfile(_Lenient):
    handoff_message: str = "Let me connect you with a colleague who can help."


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
    escalation: EscalationProfile = EscalationProfile()

    def tools_for_role(self, role: str) -> tuple[ToolProfile, ...]:
        """Tools a caller with ``role`` may trigger (so the only ones the model may see)."""
        return tuple(t for t in self.tools if role in t.allowed_roles or "*" in t.allowed_roles)


def profile_of(spec: AgentSpec) -> AgentProfile:
    """The gateway's view of a validated agent spec (the filler/apology texts keep defaults)."""
    return AgentProfile.model_validate(spec.model_dump(mode="json"))


def parse_profile(text: str, source: str = "<string>") -> AgentProfile:
    """Parse and validate one agent spec (``AgentSpecError`` names every problem)."""
    return profile_of(parse_agent_spec(text, source))


def load_profiles(path: Path) -> dict[str, AgentProfile]:
    """Profiles by agent name from one YAML file or every ``*.yaml``/``*.yml`` in a folder."""
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    elif path.is_file():
        files = [path]
    else:
        raise AgentSpecError(f"{path}: no such agent file or folder")
    profiles: dict[str, AgentProfile] = {}
    for file in files:
        profile = profile_of(load_agent_spec(file))
        if profile.name in profiles:
            raise AgentSpecError(f"{file}: agent {profile.name!r} is defined twice")
        profiles[profile.name] = profile
    return profiles
