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

SHADOW_TURNS = ConsumerSpec(
    stream=EVENTS.name,
    durable="shadow-turns",
    filter_subject=f"{EVENTS_PREFIX}.turn.>",
    description="shadow runners: every live turn mirrored to candidate agent versions.",
)

COST_LEDGER = ConsumerSpec(
    stream=EVENTS.name,
    durable="cost-ledger",
    filter_subject=f"{EVENTS_PREFIX}.cost.>",
    description="cost ledger: tokens, audio seconds and GPU time per agent version.",
)

ALL_STREAMS = (EVENTS,)
ALL_CONSUMERS = (HITL_ESCALATIONS, HITL_APPROVALS, SHADOW_TURNS, COST_LEDGER)
