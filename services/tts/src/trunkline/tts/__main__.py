"""``python -m trunkline.tts``: the tts process."""

from __future__ import annotations

from trunkline.runtime import run, serve
from trunkline.tts.server import TEXT_TO_SPEECH, TextToSpeechService, register
from trunkline.tts.settings import TtsSettings


async def main() -> None:
    settings = TtsSettings.load()
    servicer = TextToSpeechService()
    await serve(settings, lambda server: register(server, servicer), services=[TEXT_TO_SPEECH])


if __name__ == "__main__":
    raise SystemExit(run(main))
