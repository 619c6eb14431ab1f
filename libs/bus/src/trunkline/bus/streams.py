"""The platform's own JetStream streams and durable consumers, declared in one place.

Every NATS event is a protobuf message from ``events/v1/events.proto``, published on
``trunkline.events.<kind>.<tenant>.<call_id>``. The ``EVENTS`` stream keeps them all so a
consumer can restart, or a shadow runner replay, without losing any. Each durable consumer is
one reader with its own position: several processes sharing a durable split its messages.

A process calls ``await bus.ensure_stream(EVENTS)`` at start-up, then
``bus.durable_messages(HITL_ESCALATIONS)``.
"""

from __future__ import annotations

from datetime import timedelta

from trunkline.bus.specs import ConsumerSpec, Retention, StreamSpec

EVENTS_PREFIX = "trunkline.events"


def event_subject(kind: str, tenant: str, call_id: str) -> str:
    """``trunkline.events.<kind>.<tenant>.<call_id>``; ``kind`` as in ``turn``, ``escalation``."""
    for part in (kind, tenant, call_id):
        if not part or any(c in part for c in ".*> \t"):
            raise ValueError(f"invalid subject token {part!r}")
    return f"{EVENTS_PREFIX}.{kind}.{tenant}.{call_id}"


EVENTS = StreamSpec(
    name="EVENTS",
    subjects=(f"{EVENTS_PREFIX}.>",),
    retention=Retention.LIMITS,
    max_age=timedelta(days=7),
    description="Call, turn, escalation, approval and cost events (events/v1).",
)

HITL_ESCALATIONS = ConsumerSpec(
    stream=EVENTS.name,
    durable="hitl-escalations",
    filter_subject=f"{EVENTS_PREFIX}.escalation.>",
    description="hitl: calls to hand to a human operator.",
)

HITL_APPROVALS = ConsumerSpec(
    stream=EVENTS.name,
    durable="hitl-approvals",
    filter_subject=f"{EVENTS_PREFIX}.approval.>",
    description="hitl: high-stakes tool calls waiting for a human decision.",
)

SHADOW_PREFIX = "trunkline.shadow"

SHADOW = StreamSpec(
    name="SHADOW",
    subjects=(f"{SHADOW_PREFIX}.>",),
    retention=Retention.LIMITS,
    max_age=timedelta(days=1),
    description="Live turns mirrored to candidate agent versions, and their shadow results.",
)


def candidate_token(agent: str, version: str) -> str:
    """One subject token for an agent version: ``acme-dental``, ``1.1.0`` -> ``acme-dental_1-1-0``
    (a version's dots would split the token)."""
    token = f"{agent}_{version}".replace(".", "-")
    if not agent or not version or any(c in token for c in "*> \t"):
        raise ValueError(f"invalid agent version {agent!r} {version!r} for a subject")
    return token


def shadow_subject(kind: str, agent: str, version: str, tenant: str, call_id: str) -> str:
    """``trunkline.shadow.<kind>.<candidate>.<tenant>.<call_id>``; kinds ``turn`` (a mirrored
    live turn, TurnCompleted) and ``result`` (ShadowTurnResult)."""
    for part in (kind, tenant, call_id):
        if not part or any(c in part for c in ".*> \t"):
            raise ValueError(f"invalid subject token {part!r}")
    return f"{SHADOW_PREFIX}.{kind}.{candidate_token(agent, version)}.{tenant}.{call_id}"


def shadow_turns(agent: str, version: str) -> ConsumerSpec:
    """The durable consumer of one candidate version's shadow runners: its own position, so two
    candidates never split turns (replicas of one candidate share it and split the work)."""
    token = candidate_token(agent, version)
    return ConsumerSpec(
        stream=SHADOW.name,
        durable=f"shadow-{token}",
        filter_subject=f"{SHADOW_PREFIX}.turn.{token}.>",
        description=f"shadow runners of {agent} {version}: its mirrored live turns.",
    )


REPLAY_TURNS = "trunkline.replay.turn"
"""NATS request/reply (no stream holds it): the rollout's replay gate asks a gateway to answer
one scenario turn as a candidate version (ReplayTurnRequest -> ReplayTurnReply)."""
REPLAY_QUEUE = "replay"
"""The gateways' queue group on :data:`REPLAY_TURNS`: one of them answers each turn."""


COST_LEDGER = ConsumerSpec(
    stream=EVENTS.name,
    durable="cost-ledger",
    filter_subject=f"{EVENTS_PREFIX}.>",
    max_deliver=-1,
    description="cost ledger: turn usage, call ends, escalations and cost entries "
    "(trunkline.ledger; it holds a message until it is written, so never gives up on one).",
)

COST_LEDGER_SHADOW = ConsumerSpec(
    stream=SHADOW.name,
    durable="cost-ledger-shadow",
    filter_subject=f"{SHADOW_PREFIX}.result.>",
    max_deliver=-1,
    description="cost ledger: usage of candidate versions' shadow turns (cost per turn).",
)

ALL_STREAMS = (EVENTS, SHADOW)
ALL_CONSUMERS = (HITL_ESCALATIONS, HITL_APPROVALS, COST_LEDGER, COST_LEDGER_SHADOW)
"""Fixed consumers; each candidate version's shadow consumer is :func:`shadow_turns`."""
