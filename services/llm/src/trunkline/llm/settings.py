"""Settings of the llm process (env ``LLM_*``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings
from trunkline.llm.backends.requantize import Quantization
from trunkline.llm.core.history import HistoryPolicy
from trunkline.llm.core.prompt import PromptLayout


class LlmSettings(ServiceSettings):
    """``backend`` picks the generator: ``llamacpp`` (embedded SmolLM2 or ``model_path``) or
    ``openai`` (any OpenAI-compatible server at ``openai_base_url``: vLLM in production).

    ``model``: the model this service generates with, sent to an OpenAI-compatible server and
    reported in every reply; unset: the request's model (openai) or the GGUF file's name
    (llamacpp). ``agents_dir``: agent YAMLs whose prompts are warmed at start-up (a relative path
    is read from the working directory; missing: no warm-up).
    """

    model_config = SettingsConfigDict(env_prefix="LLM_", frozen=True, extra="ignore")

    service_name: str = "llm"
    grpc_port: int = Field(default=50053, ge=0, lt=65536)

    backend: Literal["llamacpp", "openai"] = "llamacpp"
    model: str | None = None
    agents_dir: Path | None = Path("agents")
    agents_source: Literal["files", "cluster"] = Field(
        default="files",
        description="files: agents_dir; cluster: the active, validated VoiceAgents of "
        "agents_namespace (read once, for the warm-up)",
    )
    agents_namespace: str = "default"
    kubeconfig: Path | None = Field(default=None, description="cluster: None is in-cluster")
    warmup: bool = True

    # prompt and generation limits
    context_size: int = Field(default=2048, ge=256, description="the model's context window")
    default_max_tokens: int = Field(default=160, gt=0, description="when a request says 0")

    # deadlines and retries (owned by the backend ABC)
    first_token_timeout_s: float = Field(default=5.0, gt=0)
    total_timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff_s: float = Field(default=0.05, ge=0)

    # llamacpp (embedded)
    model_path: Path | None = Field(default=None, description="GGUF file; None: bundled SmolLM2")
    library_dir: Path | None = Field(
        default=None,
        description="a llama.cpp build for this CPU (tools/llama_build.py) to load instead of "
        "the wheel's; used only where the CPU has every flag it was built for",
    )
    threads: int = Field(default=1, ge=1, le=256, description="threads generating tokens")
    threads_batch: int | None = Field(
        default=None, ge=1, le=256, description="threads evaluating prompts; unset: threads"
    )
    quantize: Quantization = Field(
        default="q4_0",
        description="convert the GGUF once at start-up (into cache_dir): q4_0 evaluates "
        "prompts about twice as fast as the bundled Q4_1 on CPU; keep: load it as it is",
    )
    cache_dir: Path = Field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "trunkline" / "llm"
        ),
        description="where converted models are kept ($XDG_CACHE_HOME/trunkline/llm)",
    )
    first_tokens: int = Field(
        default=8, ge=0, description="the reply's first tokens, generated on first_tokens_threads"
    )
    first_tokens_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="threads generating the first tokens (the first clause, which TTS waits "
        "for); unset: threads",
    )
    batch_size: int = Field(default=256, ge=8)
    eval_chunk_tokens: int = Field(
        default=32,
        ge=0,
        description="prompt tokens evaluated between cancel checks; 0: whole prompt at once",
    )
    prefix_states: int = Field(
        default=4, ge=0, description="agents whose stable-prefix KV state is kept in memory"
    )
    prompt_layout: PromptLayout = Field(
        default="stable_prefix",
        description="stable_prefix: context block after the history (prefix-cache friendly); "
        "context_in_system: the old layout, for comparison",
    )
    history_tokens: int = Field(
        default=384,
        ge=0,
        description="history kept verbatim in a prompt; past it the oldest turns are folded "
        "into one summary line, history_fold_turns at a time (0: never fold, only cut to the "
        "prompt budget)",
    )
    history_fold_turns: int = Field(
        default=4, ge=1, description="turns folded into the summary at once (prefix cache)"
    )
    history_summary_tokens: int = Field(
        default=96, ge=0, description="cap of the summary line of the folded turns"
    )

    def history_policy(self) -> HistoryPolicy:
        return HistoryPolicy(
            verbatim_tokens=self.history_tokens,
            fold_turns=self.history_fold_turns,
            summary_tokens=self.history_summary_tokens,
        )

    # openai
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr | None = None
    openai_connect_timeout_s: float = Field(default=2.0, gt=0)

    @field_validator(
        "model",
        "agents_dir",
        "model_path",
        "openai_api_key",
        "threads_batch",
        "first_tokens_threads",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
