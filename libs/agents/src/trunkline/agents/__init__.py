"""Agents as versioned data (DESIGN.md §4): the agent spec every service reads.

One schema serves a YAML file in development and the ``VoiceAgent`` custom resource in a cluster.
"""

from trunkline.agents.spec import (
    AgentSpec,
    AgentSpecError,
    Escalation,
    ModelSpec,
    QualifiedOutcome,
    RankMode,
    Retrieval,
    RiskLevel,
    Sampling,
    TokenBudget,
    ToolSpec,
    Voice,
    load_agent_spec,
    parse_agent_spec,
)

__all__ = [
    "AgentSpec",
    "AgentSpecError",
    "Escalation",
    "ModelSpec",
    "QualifiedOutcome",
    "RankMode",
    "Retrieval",
    "RiskLevel",
    "Sampling",
    "TokenBudget",
    "ToolSpec",
    "Voice",
    "load_agent_spec",
    "parse_agent_spec",
]
