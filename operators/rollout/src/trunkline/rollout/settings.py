"""Settings of the rollout operator process (env ``ROLLOUT_*``), read once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings
from trunkline.rollout.manifests import SecretMount


class RolloutSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROLLOUT_", frozen=True, extra="ignore")

    service_name: str = "rollout"
    grpc_port: int = Field(default=50056, ge=0, lt=65536)
    kubeconfig: Path | None = Field(
        default=None, description="None: the pod's service account, else ~/.kube/config"
    )
    namespaces: tuple[str, ...] = Field(
        default=(), description="namespaces watched; empty: every namespace (cluster-wide)"
    )
    prometheus_url: str = Field(
        default="http://prometheus:9090", description="where analysis metrics are queried"
    )
    metrics_timeout_s: float = Field(default=5.0, gt=0.0)
    shadow_image: str = Field(default="trunkline:latest", min_length=1)
    shadow_command: tuple[str, ...] = ("python", "-m", "trunkline.gateway.shadow")
    shadow_service_account: str = ""
    shadow_env: dict[str, str] = Field(
        default_factory=dict,
        description="extra env of the shadow runner pods (SHADOW_CONTEXT_ADDR, SHADOW_LLM_ADDR: "
        "the cluster's context and llm Services; the chart sets them)",
    )
    nats_url: str = Field(
        default="nats://nats:4222",
        description="where shadowed candidates are listed and shadow results are read",
    )
    nats_ca_file: Path | None = Field(default=None, description="CA for tls:// NATS")
    nats_creds_file: Path | None = Field(default=None, description="NATS credentials file")
    shadow_secret_mounts: tuple[SecretMount, ...] = Field(
        default=(),
        description="Secrets mounted in the shadow runner pods (JSON list of volume, secret, "
        "key, mount_path): the NATS CA and credentials their SHADOW_NATS_* files name",
    )
    shadow_min_turns: int = Field(
        default=3, ge=1, description="shadow metrics: paired turns a check needs in its window"
    )
    shadow_window_s: float = Field(
        default=60.0,
        ge=0.0,
        description="shadow metrics: a check reads the results of max(interval, this)",
    )
    replay_scenarios: tuple[Path, ...] = Field(
        default=(),
        description="conversation-eval scenario files or folders the replay gate runs through "
        "a candidate (those of its agent, up to spec.replay.maxCalls), answered by the "
        "gateways over NATS; empty: no replay harness (a rollout with replay enabled pauses)",
    )
    agents_dir: Path = Field(
        default=Path("agents"),
        description="the agents folder (specs, knowledge, CRM) replayed answers are checked "
        "against",
    )
    replay_tenant: str = Field(default="", description="tenant of scenarios that name none")
    replay_turn_timeout_s: float = Field(default=60.0, gt=0.0)
    replay_timeout_s: float = Field(default=600.0, gt=0.0, description="one whole replay")
    metrics_source: Literal["prometheus", "shadow"] = Field(
        default="prometheus",
        description="prometheus: the services' histograms; shadow: the candidates' paired "
        "shadow results on NATS (no Prometheus needed)",
    )
