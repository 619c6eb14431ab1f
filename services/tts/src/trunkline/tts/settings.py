"""Settings of the tts process (env ``TTS_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import PeerAddress, ServiceSettings


class TtsSettings(ServiceSettings):
    """``backend`` picks the synthesizer: ``piper`` (embedded, CPU) or ``riva`` (NVIDIA Riva at
    ``riva_addr``). ``default_voice`` is used when a stream names none (empty: the backend's
    first voice)."""

    model_config = SettingsConfigDict(env_prefix="TTS_", frozen=True, extra="ignore")

    service_name: str = "tts"
    grpc_port: int = Field(default=50054, ge=0, lt=65536)

    backend: Literal["piper", "riva"] = "piper"
    default_voice: str = ""

    # chunking, deadlines and retries (owned by the synthesizer ABC)
    chunk_s: float = Field(default=0.04, ge=0.01, le=1.0)
    first_audio_timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff_s: float = Field(default=0.05, ge=0)
    trim_leading_dbfs: float = Field(
        default=-40.0,
        le=0,
        description="cut each clause's leading silence up to 10 ms before its first sample this "
        "loud (Piper starts clauses with 40-60 ms of it); 0: keep it",
    )

    # piper (embedded)
    piper_model_path: Path | None = Field(
        default=None, description="Piper .onnx voice; None: the bundled en_US-joe-medium"
    )
    piper_config_path: Path | None = None
    piper_voice_id: str = "en_US-joe-medium"
    cpu_threads: int = Field(default=2, ge=1, le=64)

    # riva
    riva_addr: PeerAddress = "127.0.0.1:50051"
    riva_voice: str = "English-US.Female-1"
    riva_language: str = "en-US"
    riva_sample_rate: int = Field(default=22_050, gt=0)
