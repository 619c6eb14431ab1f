"""Each agent's qualified-outcome rule, from its spec (``AgentSpec.qualified_outcome``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from trunkline.agents import AgentSpec
from trunkline.agents.loader import load_agents
from trunkline.ledger.outcomes import QualifiedRule
from trunkline.ledger.store import RuleFor, no_rule


def rules_from(specs: Mapping[str, AgentSpec]) -> RuleFor:
    """Rules by agent name (an agent without a spec here has none: nothing qualifies)."""
    rules = {
        name: QualifiedRule(
            defined=spec.qualified_outcome is not None,
            tool=spec.qualified_outcome.tool if spec.qualified_outcome is not None else None,
        )
        for name, spec in specs.items()
    }

    def rule_for(agent: str, _version: str) -> QualifiedRule:
        return rules.get(agent, QualifiedRule())

    return rule_for


def rules_from_dir(path: Path | None) -> RuleFor:
    return no_rule if path is None else rules_from(load_agents(path))
