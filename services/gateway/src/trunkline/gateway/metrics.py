"""The gateway's metrics (OpenTelemetry instruments, served on /metrics by trunkline.telemetry)."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.metrics import Meter


def version_labels(agent: str, version: str) -> dict[str, str]:
    """The labels of per-version series (``agent``, ``version``): voice-to-voice and the stage
    histograms carry them, as the shadow runners' and the cost ledger's series do, so the
    rollout operator and Grafana split a p95 by agent version."""
    return {"agent": agent, "version": version}


# Latency buckets in seconds: fine below one second where the targets are.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, 0.65, 1.0, 1.5, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Histograms per stage and for voice-to-voice / barge-in; counters for degraded paths."""

    def __init__(self, meter: Meter) -> None:
        self.stage = meter.create_histogram(
            "gateway.stage.duration",
            unit="s",
            description="Per-turn stage latency: endpointing, stt, context, prompt_compile, "
            "llm_ttft, llm_first_clause, tts_ttfa, tool",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.voice_to_voice = meter.create_histogram(
            "gateway.voice_to_voice.duration",
            unit="s",
            description="Caller's last voiced frame to the agent's first reply frame sent",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.barge_in = meter.create_histogram(
            "gateway.barge_in.stop.duration",
            unit="s",
            description="Caller speech onset frame received to outbound audio stopped",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.peer_failures = meter.create_counter(
            "gateway.peer.failures", description="Failed or timed-out peer attempts, per stage"
        )
        self.fillers = meter.create_counter(
            "gateway.fillers", description="Fillers played while a peer was slow or down"
        )
        self.bad_messages = meter.create_counter(
            "gateway.transport.bad_messages",
            description="Malformed or unknown transport messages, per transport and reason",
        )
        self.tool_calls = meter.create_counter(
            "gateway.tool.calls",
            description="Tool calls by tool and status (succeeded, failed, forbidden, ...)",
        )
        self.cache_stores = meter.create_counter(
            "gateway.cache.stores",
            description="Answers offered to the semantic cache: stored or refused (its decision)",
        )
        self.turns_dropped = meter.create_counter(
            "gateway.turns.dropped",
            description="Turns whose work was started and thrown away, per reason ('speech "
            "resumed': a speculative start the caller talked through)",
        )
        self.guard_interventions = meter.create_counter(
            "gateway.guard.interventions",
            description="Clauses the grounding guard held back, per fact kind and action "
            "(fallback: the spec's fallback was spoken instead; dropped: nothing replaced it)",
        )
        self.replies = meter.create_counter(
            "gateway.replies",
            description="Caller turns by the source of the reply said (llm, tool, knowledge, "
            "cache, deflection, goodbye, small_talk, repeat, fallback, ...) and intent",
        )
        self.end_of_turn_verdicts = meter.create_counter(
            "gateway.end_of_turn.verdicts",
            description="Semantic end-of-turn verdicts by outcome (complete: the turn ends at the "
            "short silence; incomplete: the silence endpoint decides; stale: came too late)",
        )
        self.end_of_turn_inference = meter.create_histogram(
            "gateway.end_of_turn.inference.duration",
            unit="s",
            description="Smart Turn inference per pause (features + model, on its worker thread)",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.turn_ends = meter.create_counter(
            "gateway.turns.ended",
            description="Caller turns ended, by what ended them (silence: the silence endpoint; "
            "semantic: the end-of-turn verdict at a short silence)",
        )
        self.calls = meter.create_up_down_counter("gateway.calls.active", description="Live calls")
        self.escalation_decisions = meter.create_counter(
            "gateway.escalation.decisions",
            description="Per-turn escalation decisions, by trigger (none: no trigger) and "
            "whether the call escalated",
        )
        self.handoffs = meter.create_counter(
            "gateway.handoffs",
            description="Handoffs to a person by outcome (handed_back, ended, timed_out, "
            "dismissed, unavailable, call_ended)",
        )
        self.approvals = meter.create_counter(
            "gateway.approvals",
            description="High-risk tool approvals by outcome (approved, edited, denied, expired, "
            "unavailable)",
        )

    def observe_stage(
        self, stage: str, seconds: float, labels: Mapping[str, str] | None = None
    ) -> None:
        """``labels``: the call's :func:`version_labels` (a stage timed outside a call has
        none)."""
        self.stage.record(seconds, {"stage": stage, **(labels or {})})
