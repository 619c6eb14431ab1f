"""The gateway process's wiring: peer channels, agent profiles and the sink, one
:class:`CallSession` per media stream. No protocol logic lives here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import yaml
from opentelemetry.trace import Tracer

from trunkline.agents.dtmf import menu_items
from trunkline.gateway.approvals import HitlApprover
from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.replies import Fallback, GuardPolicy
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig
from trunkline.gateway.end_of_turn import EndOfTurnDetector, SmartTurnModel
from trunkline.gateway.escalations import HandoffTexts, HumanSide, Sentiment, escalation_policy
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.grpc_context import GrpcContext
from trunkline.gateway.peers.grpc_hitl import GrpcHumanLoop
from trunkline.gateway.peers.grpc_llm import GrpcLanguageModel
from trunkline.gateway.peers.grpc_stt import GrpcTranscriber
from trunkline.gateway.peers.grpc_tts import GrpcSynthesizer
from trunkline.gateway.peers.hitl import HumanLoop
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.profile import AgentProfile, reply_policy
from trunkline.gateway.records import CallSink
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.session_handoffs import load_hold_audio
from trunkline.gateway.settings import GatewaySettings, TenantConfig
from trunkline.gateway.tools import HttpToolRunner, ToolExecutor, tool_book
from trunkline.gateway.tools.security import (
    AuditSink,
    TenantLimits,
    TenantRateLimiter,
    ToolSecurity,
)
from trunkline.gateway.transcripts import TranscriptPolicy
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.vad import SileroDetector, SileroModel
from trunkline.gateway.web import TenantAuth

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeerChannels:
    stt: grpc.aio.Channel
    context: grpc.aio.Channel
    llm: grpc.aio.Channel
    tts: grpc.aio.Channel
    hitl: grpc.aio.Channel | None = None  # None: calls never escalate, high-risk tools refused

    async def close(self) -> None:
        for chan in (self.stt, self.context, self.llm, self.tts, self.hitl):
            if chan is not None:
                await chan.close()


def tenant_configs(settings: GatewaySettings) -> dict[str, TenantConfig]:
    """Tenants from ``GATEWAY_TENANTS`` and ``GATEWAY_TENANTS_FILE`` (the env wins)."""
    configs: dict[str, TenantConfig] = {}
    if settings.tenants_file is not None:
        data = yaml.safe_load(Path(settings.tenants_file).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{settings.tenants_file}: tenants must be a mapping")
        configs.update({str(k): TenantConfig.model_validate(v) for k, v in data.items()})
    configs.update(settings.tenants)
    return configs


def transcript_policies(settings: GatewaySettings) -> dict[str, TranscriptPolicy]:
    """Each tenant's transcript policy (unredacted transcripts: off unless it says so)."""
    return {name: cfg.transcripts for name, cfg in tenant_configs(settings).items()}


def load_tenants(settings: GatewaySettings) -> dict[str, TenantAuth]:
    """Tenants from ``GATEWAY_TENANTS`` and ``GATEWAY_TENANTS_FILE`` (the env wins)."""
    configs = tenant_configs(settings)
    return {
        name: TenantAuth(
            twilio_auth_token=cfg.twilio_auth_token.get_secret_value(),
            stream_secret=cfg.stream_secret.get_secret_value(),
            agents=frozenset(cfg.agents),
        )
        for name, cfg in configs.items()
    }


class Gateway:
    """Runs calls: picks the agent profile, builds the call's peers and session, keeps it listed."""

    def __init__(
        self,
        settings: GatewaySettings,
        profiles: Mapping[str, AgentProfile],
        sink: CallSink,
        channels: PeerChannels,
        *,
        clock: Clock,
        tracer: Tracer,
        metrics: GatewayMetrics | None = None,
        calls: LiveCalls | None = None,
        http: httpx.AsyncClient | None = None,
        vad: SileroModel | None = None,
        end_of_turn: EndOfTurnDetector | None = None,
        audit: AuditSink | None = None,
        tool_limits: TenantLimits | None = None,
    ) -> None:
        """``http`` is the client tool calls go out on (owned by the caller, who closes it);
        without one, tool calls are decided but none is run (they fail with a clear result).
        The models are loaded once here (not per call): ``vad`` one Silero session for every
        call's detector; ``end_of_turn`` Smart Turn, when the settings allow it and an agent
        turns it on."""
        self.settings = settings
        self.profiles = profiles
        self.sink = sink
        self.channels = channels
        self.clock = clock
        self.tracer = tracer
        self.metrics = metrics
        self.calls = calls if calls is not None else LiveCalls()
        self.fillers = FillerCache(clock)
        self._env = PeerEnv(clock, tracer, metrics)
        self._policy = RetryPolicy(timeout_s=settings.peer_timeout_s)
        self._tool_runner = HttpToolRunner(http) if http is not None else None
        # per tenant: across replicas (Redis) when given, else across this process's calls
        self._tool_limits = tool_limits or TenantRateLimiter()
        self._audit = audit  # one ToolAudit event per decided tool call (tools/security.py)
        self.vad = vad or SileroModel()
        wanted = settings.smart_turn and any(
            p.turn_taking.semantic_end_of_turn for p in profiles.values()
        )
        if end_of_turn is None and wanted:
            end_of_turn = SmartTurnModel(workers=settings.smart_turn_workers)
        self.end_of_turn = end_of_turn if settings.smart_turn else None
        hitl_channel = channels.hitl if channels is not None else None  # tests pass none
        self.hitl: HumanLoop | None = GrpcHumanLoop(hitl_channel) if hitl_channel else None
        self._sentiment = Sentiment() if self.hitl is not None else None
        # Each agent's hold audio read once, at start (a bad file is an error now, not mid-call).
        self._hold = {
            name: load_hold_audio(p.escalation.hold_audio) if p.escalation.hold_audio else b""
            for name, p in profiles.items()
        }

    def human(self, profile: AgentProfile) -> HumanSide | None:
        """The agent's human-in-the-loop setup; None without a hitl peer or when disabled."""
        spec = profile.escalation
        if self.hitl is None or self._sentiment is None or not spec.enabled:
            return None
        return HumanSide(
            self.hitl,
            self._sentiment,
            escalation_policy(profile),
            HandoffTexts(
                handoff=spec.handoff_message,
                callback=spec.callback_message,
                callback_accepted=spec.callback_accepted_message,
                callback_declined=spec.callback_declined_message,
                resume=spec.resume_message,
                unavailable=spec.unavailable_message,
                approval=spec.approval_message,
            ),
            hold_pcm=self._hold.get(profile.name, b""),
            operator_timeout_s=spec.operator_timeout_s,
            approval_timeout_s=spec.approval_timeout_s,
        )

    def peers(self, profile: AgentProfile, out_rate: int = 16000) -> Peers:
        """``out_rate``: the transport's output rate; TTS renders at it (one resample)."""
        env, policy, ch = self._env, self._policy, self.channels
        return Peers(
            stt=GrpcTranscriber(
                env,
                ch.stt,
                language=profile.voice.language,
                phrase_hints=profile.stt.vocabulary,
                phrase_boost=profile.stt.boost,
                policy=policy,
            ),
            context=GrpcContext(env, ch.context, profile.retrieval, policy),
            llm=GrpcLanguageModel(env, ch.llm, profile, policy),
            tts=GrpcSynthesizer(env, ch.tts, profile.voice, policy, sample_rate=out_rate),
        )

    def detector(self) -> SileroDetector:
        """A call's VAD: its own state (buffers, LSTM) over the one shared model."""
        return SileroDetector(self.vad)

    def tools(self, profile: AgentProfile) -> ToolExecutor | None:
        if self._tool_runner is None:
            return None
        book = tool_book(profile, self.settings.max_tool_rounds)
        approver = HitlApprover(self.hitl, self.clock) if self.hitl is not None else None
        return ToolExecutor(
            book,
            self._tool_runner,
            clock=self.clock,
            tracer=self.tracer,
            metrics=self.metrics,
            approver=approver,
            approval_timeout_s=profile.escalation.approval_timeout_s,
            approval_line=profile.escalation.approval_message,
            security=ToolSecurity(self._tool_limits, self._audit),
        )

    def session_config(self, profile: AgentProfile) -> SessionConfig:
        settings = self.settings
        endpoint = EndpointConfig(
            endpoint_ms=settings.endpoint_ms,
            barge_in_onset_frames=settings.barge_in_onset_frames,
            quiet_dbfs=settings.quiet_dbfs or None,
            loud_dbfs=settings.loud_dbfs or None,
        )
        speculate = settings.speculate_after_ms if settings.speculative_start else None
        semantic = None
        if self.end_of_turn is not None and profile.turn_taking.semantic_end_of_turn:
            semantic = SemanticEndConfig(
                after_ms=settings.smart_turn_after_ms,
                threshold=profile.turn_taking.threshold,
                min_speech_ms=profile.turn_taking.min_speech_ms,
            )
        hold = profile.turn_taking.number_hold_ms
        return SessionConfig(
            turn=TurnConfig(
                endpoint=endpoint,
                speculate_after_ms=speculate,
                prefetch_every_ms=settings.prefetch_every_ms or None,
                semantic=semantic,
                number_hold_ms=hold if hold > settings.endpoint_ms else None,
                complete_number_lengths=frozenset(profile.turn_taking.number_lengths),
            ),
            greeting=profile.greeting,
            filler_text=profile.filler_text,
            apology_text=profile.apology_text,
            llm_prefill=settings.llm_prefill,
            first_clause_words=settings.first_clause_words or None,
            replies=reply_policy(profile),
            guard=GuardPolicy(
                enabled=profile.grounding.guard,
                fallback=Fallback(profile.grounding.fallback.value),
                safe_line=profile.grounding.safe_line,
            ),
            grounding_texts=(profile.system_prompt,),
            keypad=menu_items(profile.dtmf),
            keypad_no_person=profile.escalation.unavailable_message,
        )

    async def run_call(self, start: CallStart, transport: Transport) -> None:
        profile = self.profiles.get(start.agent)
        if profile is None:
            log.warning("call %s refused: no agent profile %r", start.call_id, start.agent)
            return
        call = CallInfo(
            call_id=start.call_id,
            tenant=start.tenant,
            agent=profile.name,
            agent_version=profile.version,
            caller_address=start.caller,
            dialed=start.callee,
            caller_role=start.parameters.get("caller_role") or "caller",  # authenticated
        )
        config = self.session_config(profile)
        session = CallSession(
            call,
            transport,
            self.peers(profile, transport.out_rate),
            self.detector(),
            self.sink,
            clock=self.clock,
            tracer=self.tracer,
            metrics=self.metrics,
            fillers=self.fillers,
            config=config,
            tools=self.tools(profile),
            entity_names=profile.retrieval.entity_names,
            end_of_turn=self.end_of_turn if config.turn.semantic is not None else None,
            human=self.human(profile),
        )
        self.calls.add(session)
        try:
            await session.run()
        finally:
            self.calls.remove(session)
