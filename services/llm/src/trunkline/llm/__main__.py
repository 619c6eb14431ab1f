"""``python -m trunkline.llm``: the llm process."""

from __future__ import annotations

from trunkline.llm.server import LANGUAGE_MODEL, LanguageModelService, register
from trunkline.llm.settings import LlmSettings
from trunkline.runtime import run, serve


async def main() -> None:
    settings = LlmSettings.load()
    servicer = LanguageModelService()
    await serve(settings, lambda server: register(server, servicer), services=[LANGUAGE_MODEL])


if __name__ == "__main__":
    raise SystemExit(run(main))
