"""Defaults that must be the same wherever Trunkline runs: how the gateway takes turns and how
long it waits for a peer.

One home: the gateway's settings take their field defaults from :data:`TURN_TAKING`, the local
stack (``trunkline stack up``) passes the same values, and the Helm chart's ``values.yaml``
(``services.gateway.turnTaking``, camelCase keys) carries the same numbers:
``tests/integration/test_defaults_agree.py`` proves the three agree. Change a value here, then
in ``values.yaml``; the test names any that drifted.

What legitimately differs per environment is not here: ports, paths, drain times (seconds
locally, minutes for a gateway pod), thread counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TurnTaking:
    """The gateway's turn-taking knobs (``GATEWAY_<FIELD>``); README, "Turn-taking knobs"."""

    endpoint_ms: int = 380
    """Silence that ends the caller's turn, counted from the first silent frame (~20-60 ms after
    the last sound): a turn ends ~400 ms after the last word. 300 split one question at the
    pause between its two sentences (README)."""
    peer_timeout_s: float = 8.0
    """Deadline per peer attempt before a retry; the caller hears a filler meanwhile. An
    embedded llama.cpp cannot stop a prompt evaluation, so a retry after a short deadline only
    queues a second generation behind the first; a vLLM deployment may set it lower."""
    barge_in_onset_frames: int = 2
    quiet_dbfs: float = -50.0
    loud_dbfs: float = -30.0
    speculative_start: bool = True
    speculate_after_ms: int = 20
    llm_prefill: bool = True
    prefetch_every_ms: int = 400
    first_clause_words: int = 3
    max_tool_rounds: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


TURN_TAKING = TurnTaking()


def chart_key(field: str) -> str:
    """The chart's values key of a field: ``endpoint_ms`` -> ``endpointMs``."""
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def env_value(value: object) -> str:
    """A default as an environment variable spells it (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
