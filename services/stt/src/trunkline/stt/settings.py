"""Settings of the stt process (env ``STT_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from trunkline.config import PeerAddress, ServiceSettings


class SttSettings(ServiceSettings):
    """``backend`` picks the recognizer: ``whisper`` (embedded, CPU) or ``riva`` (NVIDIA Riva at
    ``riva_addr``). ``partial_interval_s`` > 0 makes Whisper re-decode the growing utterance
    for partials (streams still opt in with ``partial_results``); 0 turns partials off."""

    model_config = SettingsConfigDict(env_prefix="STT_", frozen=True, extra="ignore")

    service_name: str = "stt"
    grpc_port: int = Field(default=50051, ge=0, lt=65536)

    backend: Literal["whisper", "riva"] = "whisper"
    language: str = Field(default="en-US", description="the only language the backend speaks")

    # deadlines and retries (owned by the recognizer ABC)
    final_timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff_s: float = Field(default=0.05, ge=0)

    # partials and the no-speech rule
    partial_interval_s: float = Field(default=0.0, ge=0)
    no_speech_threshold: float = Field(default=0.6, gt=0, le=1)

    # whisper (embedded)
    whisper_model_path: Path | None = Field(
        default=None, description="CTranslate2 Whisper model dir; None: bundled tiny.en"
    )
    whisper_compute_type: str = "int8"
    cpu_threads: int = Field(default=2, ge=1, le=64)

    # riva
    riva_addr: PeerAddress = "127.0.0.1:50051"
    riva_model: str = ""
    riva_punctuation: bool = True
