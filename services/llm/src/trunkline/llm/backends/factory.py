"""Build the configured backend from settings (the only place that picks one)."""

from __future__ import annotations

from trunkline.llm.backends.base import CallPolicy, LlmBackend, LlmMetrics
from trunkline.llm.settings import LlmSettings


def call_policy(settings: LlmSettings) -> CallPolicy:
    return CallPolicy(
        first_token_timeout_s=settings.first_token_timeout_s,
        total_timeout_s=settings.total_timeout_s,
        retries=settings.retries,
        retry_backoff_s=settings.retry_backoff_s,
    )


def build_backend(settings: LlmSettings, metrics: LlmMetrics | None = None) -> LlmBackend:
    """The backend ``settings.backend`` names, not started (``await backend.start()``)."""
    policy = call_policy(settings)
    if settings.backend == "openai":
        from trunkline.llm.backends.openai import OpenAIBackend, OpenAIConfig  # noqa: PLC0415

        key = settings.openai_api_key
        config = OpenAIConfig(
            base_url=settings.openai_base_url,
            model=settings.model,
            api_key=key.get_secret_value() if key is not None else None,
            connect_timeout_s=settings.openai_connect_timeout_s,
        )
        return OpenAIBackend(config, policy=policy, metrics=metrics)
    from trunkline.llm.backends import cpubuild  # noqa: PLC0415

    cpubuild.use(settings.library_dir)  # before anything imports llama_cpp
    from trunkline.llm.backends.llamacpp import (  # noqa: PLC0415
        LlamaCppBackend,
        LlamaCppConfig,
        smollm2_model_path,
    )

    path = settings.model_path or smollm2_model_path()
    llama = LlamaCppConfig(
        model_path=path,
        n_ctx=settings.context_size,
        n_threads=settings.threads,
        n_threads_batch=settings.threads_batch,
        n_batch=settings.batch_size,
        eval_chunk=settings.eval_chunk_tokens,
        prefix_states=settings.prefix_states,
        quantize=settings.quantize,
        first_tokens=settings.first_tokens,
        first_tokens_threads=settings.first_tokens_threads,
        cache_dir=settings.cache_dir,
    )
    return LlamaCppBackend(llama, policy=policy, metrics=metrics)


def served_model(settings: LlmSettings) -> str | None:
    """The model name every reply reports: ``LLM_MODEL``, else the GGUF file's name (llamacpp),
    else None (openai: the request's model)."""
    if settings.model:
        return settings.model
    if settings.backend == "llamacpp" and settings.model_path is not None:
        return settings.model_path.stem
    if settings.backend == "llamacpp":
        return "smollm2-135m-instruct"
    return None
