"""Shadow sampling and pairing, as pure functions (no I/O, no clock).

Sampling is deterministic by call id: a call is mirrored to a candidate with sample percent
``p`` when its id hashes below ``p`` (every turn of a sampled call, none of another, so the
shadow keeps the call's whole history; and the same calls at every gateway and after a
restart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trunkline.proto.events.v1 import events_pb2

REPLY_STAGES = ("context.resolve", "llm.time_to_first_clause")
"""Transcript to the first reply clause: the stages a live turn and its shadow both run."""
BUCKETS = 10_000


def sample_point(call_id: str) -> float:
    """Where a call falls in [0, 100): the same for every process and every run."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS * 100.0 / BUCKETS


def sampled(call_id: str, percent: float) -> bool:
    """True when the call's turns are mirrored at ``percent`` (0..100)."""
    return percent >= 100.0 or sample_point(call_id) < percent


def reply_time_s(stages: Mapping[str, float]) -> float:
    """Seconds from the transcript to the first reply clause, from a turn's stage timings
    (named as in ``TurnCompleted.stages``); stages a turn did not run count zero."""
    return sum(stages.get(name, 0.0) for name in REPLY_STAGES)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # canonical JSON (sorted keys, no spaces); the raw text when not JSON


def tool_call(name: str, arguments_json: str) -> ToolCall:
    try:
        value = json.loads(arguments_json or "{}")
    except json.JSONDecodeError:
        return ToolCall(name, arguments_json.strip())
    return ToolCall(name, json.dumps(value, sort_keys=True, separators=(",", ":")))


def tools_agree(live: Iterable[ToolCall], shadow: Iterable[ToolCall]) -> bool:
    """The same tools with the same arguments in the same order (none and none agree)."""
    return list(live) == list(shadow)


def live_stages(turn: events_pb2.TurnCompleted) -> dict[str, float]:
    return {s.stage: s.duration.ToTimedelta().total_seconds() for s in turn.stages}


def live_tools(turn: events_pb2.TurnCompleted) -> list[ToolCall]:
    return [tool_call(t.call.name, t.call.arguments_json) for t in turn.tool_calls]
