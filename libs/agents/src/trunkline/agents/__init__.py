"""Agents as versioned data (DESIGN.md §4): the agent spec every service reads.

One schema serves a YAML file in development and the ``VoiceAgent`` custom resource in a cluster.
"""

from trunkline.agents.loader import load_agent_file, load_agents, spec_from_resource
from trunkline.agents.spec import (
    AgentSpec,
    AgentSpecError,
    AnswerStrategy,
    Escalation,
    Grounding,
    GuardFallback,
    Intent,
    Intents,
    LiveSource,
    ModelSpec,
    QualifiedOutcome,
    RankMode,
    Retrieval,
    RiskLevel,
    Sampling,
    SetOperation,
    SetOperator,
    TokenBudget,
    ToolSpec,
    Voice,
    load_agent_spec,
    parse_agent_spec,
)

__all__ = [
    "AgentSpec",
    "AgentSpecError",
    "AnswerStrategy",
    "Escalation",
    "Grounding",
    "GuardFallback",
    "Intent",
    "Intents",
    "LiveSource",
    "ModelSpec",
    "QualifiedOutcome",
    "RankMode",
    "Retrieval",
    "RiskLevel",
    "Sampling",
    "SetOperation",
    "SetOperator",
    "TokenBudget",
    "ToolSpec",
    "Voice",
    "load_agent_file",
    "load_agent_spec",
    "load_agents",
    "parse_agent_spec",
    "spec_from_resource",
]
