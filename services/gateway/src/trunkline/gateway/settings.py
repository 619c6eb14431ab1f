"""Settings of the gateway process (env ``GATEWAY_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import PeerAddress, ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    service_name: str = "gateway"
    grpc_port: int = Field(default=50050, ge=0, lt=65536)
    stt_addr: PeerAddress = "127.0.0.1:50051"
    context_addr: PeerAddress = "127.0.0.1:50052"
    llm_addr: PeerAddress = "127.0.0.1:50053"
    tts_addr: PeerAddress = "127.0.0.1:50054"
    hitl_addr: PeerAddress = "127.0.0.1:50055"
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"

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
