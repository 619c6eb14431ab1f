"""Settings of the gateway process (env ``GATEWAY_*``).

Latency knobs (voice-to-voice = last voiced caller frame -> first reply frame sent):

- ``GATEWAY_ENDPOINT_MS`` (380): silence that ends the caller's turn.
  Reply audio is held until then, so it is the floor of voice-to-voice latency. Shorter answers
  sooner but splits utterances at longer pauses (the caller then "continues" and the turn is
  redone with the whole utterance).
- ``GATEWAY_SPECULATIVE_START`` (true) and ``GATEWAY_SPECULATE_AFTER_MS`` (20: the first silent
  frame): the turn's work (STT final, context, LLM, TTS) starts during the pause, so by the
  endpoint the reply is often ready. If the caller speaks again first, the work is cancelled on
  that frame: its task is cancelled, which closes the LLM and TTS gRPC streams (the servers see
  the RPC cancelled). Off, the work starts at the endpoint.
- ``GATEWAY_MAX_TOOL_ROUNDS`` (2): generation rounds with tool results per turn.
- ``GATEWAY_SMART_TURN`` (true), ``GATEWAY_SMART_TURN_AFTER_MS`` (200): for agents whose spec
  sets ``turn_taking.semantic_end_of_turn``, Smart Turn judges each pause at its first silent
  frame and a "complete" verdict ends the turn after this much silence instead of the endpoint
  (``make bench-turn``: false cut-offs at mid-sentence pauses are measured there).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from trunkline.config import TURN_TAKING, PeerAddress, ServiceSettings
from trunkline.gateway.transcripts import TranscriptPolicy


class TenantConfig(BaseModel):
    """One tenant's telephony credentials and the agents its numbers may reach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    twilio_auth_token: SecretStr = SecretStr("")
    twilio_account_sid: str = ""  # with the auth token: the REST API (admin Transfer)
    stream_secret: SecretStr
    agents: tuple[str, ...] = Field(min_length=1)
    transcripts: TranscriptPolicy = TranscriptPolicy()  # unredacted transcripts: off by default
    livekit_api_key: str = ""  # the tenant's own LiveKit project; empty: GATEWAY_LIVEKIT_API_KEY
    livekit_api_secret: SecretStr = SecretStr("")


class GatewaySettings(ServiceSettings):
    """``GATEWAY_TENANTS`` is JSON (``{"acme": {"stream_secret": "...", "agents": [...]}}``);
    ``GATEWAY_TENANTS_FILE`` a YAML/JSON file of the same shape; both are merged."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    service_name: str = "gateway"
    grpc_port: int = Field(default=50050, ge=0, lt=65536)
    stt_addr: PeerAddress = "127.0.0.1:50051"
    context_addr: PeerAddress = "127.0.0.1:50052"
    llm_addr: PeerAddress = "127.0.0.1:50053"
    tts_addr: PeerAddress = "127.0.0.1:50054"
    hitl_addr: PeerAddress = "127.0.0.1:50055"
    join_secret: SecretStr | None = Field(
        default=None,
        description="Shared with hitl (HITL_JOIN_SECRET): checks operators' join tokens on "
        "POST /webrtc/operator (operators cannot join by WebRTC when unset)",
    )
    nats_url: str = "nats://127.0.0.1:4222"
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ca_file: Path | None = Field(default=None, description="CA for rediss:// Redis")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, lt=65536, description="media streams; 0: any")
    twilio_api_url: str = Field(
        default="https://api.twilio.com", description="Twilio's REST API (admin Transfer)"
    )
    public_url: str = Field(
        default="", description="URL Twilio reaches us at (TwiML); empty: http://host:port"
    )
    agents_path: Path = Field(default=Path("agents"), description="agent YAML file or folder")
    agents_source: Literal["files", "cluster"] = Field(
        default="files",
        description="files: agents_path; cluster: the validated, active VoiceAgents of "
        "agents_namespace, watched (a promotion reaches new calls)",
    )
    agents_namespace: str = "default"
    kubeconfig: Path | None = Field(
        default=None, description="cluster source: None is in-cluster, else ~/.kube/config"
    )
    shadow_mirror: bool = Field(
        default=True,
        description="mirror sampled live turns to the candidate versions being shadowed",
    )
    replay_answers: bool = Field(
        default=True,
        description="answer the rollout replay gate's turns (trunkline.replay.turn) as the "
        "candidate, headless (gateway.shadow.replay)",
    )
    livekit_url: str = Field(
        default="",
        description="LiveKit server (ws:// or wss://) the agent joins callers' rooms on; empty: no "
        "LiveKit (POST /livekit/webhook dispatches rooms named <tenant>.<agent>.<call id>)",
    )
    livekit_public_url: str = Field(
        default="",
        description="the LiveKit URL browsers reach (the /livekit/call page); empty: livekit_url",
    )
    softphone_url: str = Field(
        default="",
        description="the console's WebRTC softphone page, linked from /livekit/call; empty: none",
    )
    livekit_api_key: str = Field(default="", description="API key for tenants without their own")
    livekit_api_secret: SecretStr = SecretStr("")
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    tenants_file: Path | None = None
    transcripts_url: str = Field(
        default="",
        description="SQLAlchemy URL of the encrypted transcript store (tenants whose policy "
        "allows it); empty: unredacted transcripts are never stored",
    )
    gateway_id: str = Field(default_factory=socket.gethostname, description="pod name")
    state_ttl_seconds: int = Field(default=6 * 3600, gt=0)
    # The turn-taking defaults live in trunkline.config.defaults (shared with the chart and the
    # local stack; tests/integration/test_defaults_agree.py).
    peer_timeout_s: float = Field(
        default=TURN_TAKING.peer_timeout_s, gt=0, description="per attempt / between items"
    )
    endpoint_ms: int = Field(
        default=TURN_TAKING.endpoint_ms,
        ge=20,
        description="silence (ms) that ends the caller's turn; most of voice-to-voice latency",
    )
    barge_in_onset_frames: int = Field(
        default=TURN_TAKING.barge_in_onset_frames,
        ge=1,
        description="voiced 20 ms frames that make a barge-in while the agent speaks (a turn "
        "start needs 3): the agent stops sooner when talked over",
    )
    quiet_dbfs: float = Field(
        default=TURN_TAKING.quiet_dbfs,
        le=0,
        description="a caller frame quieter than this (and 30 dB below the utterance's loudest) is "
        "silence whatever the VAD says, so the pause is seen ~60 ms sooner; 0: the VAD alone",
    )
    loud_dbfs: float = Field(
        default=TURN_TAKING.loud_dbfs,
        le=0,
        description="a caller frame this loud counts towards a speech onset (and a barge-in) from "
        "VAD probability 0.2 instead of 0.5; 0: the VAD alone",
    )
    speculative_start: bool = Field(
        default=TURN_TAKING.speculative_start,
        description="start STT/context/LLM/TTS during the pause, before the endpoint; the work "
        "is cancelled (the LLM stream closed) if the caller goes on",
    )
    speculate_after_ms: int = Field(
        default=TURN_TAKING.speculate_after_ms,
        ge=20,
        description="silence (ms) before speculative work starts; 20: the first silent frame",
    )
    llm_prefill: bool = Field(
        default=TURN_TAKING.llm_prefill,
        description="after each turn, have the LLM evaluate the system prompt, tools and history "
        "while the caller speaks, so the next turn evaluates only its context and question",
    )
    prefetch_every_ms: int = Field(
        default=TURN_TAKING.prefetch_every_ms,
        ge=0,
        description="while the caller speaks, read the utterance so far ahead (STT, context, LLM "
        "prefill) every this much speech, so the prompt is evaluated when they stop; 0: off",
    )
    first_clause_words: int = Field(
        default=TURN_TAKING.first_clause_words,
        ge=0,
        description="cut the reply's first clause after this many words when no punctuation "
        "came yet, so its audio starts sooner; 0: only punctuation cuts",
    )
    max_tool_rounds: int = Field(
        default=TURN_TAKING.max_tool_rounds,
        ge=1,
        le=8,
        description="generation rounds with tool results per turn",
    )
    smart_turn: bool = Field(
        default=True,
        description="semantic end of turn for agents whose spec turns it on "
        "(turn_taking.semantic_end_of_turn): Smart Turn is loaded once at start; false: the "
        "silence endpoint alone for every agent",
    )
    smart_turn_after_ms: int = Field(
        default=200,
        ge=20,
        description="silence (ms) after which a 'complete' verdict ends the turn (the silence "
        "endpoint stays the fallback and hard maximum)",
    )
    smart_turn_workers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Smart Turn inferences at once, one core each (~140 ms); a verdict that "
        "queues past the silence endpoint is ignored",
    )

    @model_validator(mode="after")
    def _speculation_before_endpoint(self) -> Self:
        if self.speculative_start and self.speculate_after_ms >= self.endpoint_ms:
            raise ValueError("speculate_after_ms must be below endpoint_ms")
        if self.smart_turn and self.smart_turn_after_ms >= self.endpoint_ms:
            raise ValueError("smart_turn_after_ms must be below endpoint_ms")
        return self

    @property
    def peer_addrs(self) -> dict[str, str]:
        """The gRPC peers the gateway needs SERVING before it is ready, by name."""
        return {
            "stt": self.stt_addr,
            "context": self.context_addr,
            "llm": self.llm_addr,
            "tts": self.tts_addr,
            "hitl": self.hitl_addr,
        }

    def public_base(self, bound_port: int) -> str:
        return self.public_url or f"http://{self.http_host}:{bound_port}"
