"""``python -m trunkline.llm``: the llm process.

It listens at once (health NOT_SERVING), then in the background loads the model (llamacpp) or
waits for the server to answer (openai), warms each known agent's prompt, and only then turns
SERVING.
"""

from __future__ import annotations

import os

from trunkline.llm.backends.openmp import SPIN_COUNT, SPIN_VAR, WAIT_POLICY, WAIT_VAR

os.environ.setdefault(SPIN_VAR, SPIN_COUNT)  # before anything loads llama.cpp
os.environ.setdefault(WAIT_VAR, WAIT_POLICY)

import logging

from trunkline.llm.backends import LlmBackend
from trunkline.llm.backends.factory import build_backend, served_model
from trunkline.llm.convert import Limits
from trunkline.llm.server import LANGUAGE_MODEL, LanguageModelService, ServingOptions, register
from trunkline.llm.settings import LlmSettings
from trunkline.llm.warmup import agents_to_warm, start_backend, warm_up
from trunkline.runtime import Connecting, run, serve

log = logging.getLogger("trunkline.llm")


async def prepare(settings: LlmSettings, servicer: LanguageModelService) -> LlmBackend:
    backend = servicer.backend
    try:
        await start_backend(backend)
        if settings.warmup:
            await warm_up(backend, await agents_to_warm(settings), servicer.options.model)
    except Exception:
        log.exception("llm backend %s failed to start", backend.name)
        raise
    servicer.mark_warm()
    log.info("llm backend %s ready", backend.name)
    return backend


async def main() -> None:
    settings = LlmSettings.load()
    options = ServingOptions(
        limits=Limits(
            context_tokens=settings.context_size, default_max_tokens=settings.default_max_tokens
        ),
        model=served_model(settings),
        layout=settings.prompt_layout,
        history=settings.history_policy(),
    )
    servicer = LanguageModelService(build_backend(settings), options)
    loading = Connecting(lambda: prepare(settings, servicer), name="llm-model")

    async def close() -> None:
        await loading.close(lambda backend: backend.aclose())

    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[LANGUAGE_MODEL],
        ready=servicer.ready,
        on_shutdown=[close],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
