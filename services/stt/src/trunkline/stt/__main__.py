"""``python -m trunkline.stt``: the stt process."""

from __future__ import annotations

from trunkline.runtime import run, serve
from trunkline.stt.server import SPEECH_TO_TEXT, SpeechToTextService, register
from trunkline.stt.settings import SttSettings


async def main() -> None:
    settings = SttSettings.load()
    servicer = SpeechToTextService()
    await serve(settings, lambda server: register(server, servicer), services=[SPEECH_TO_TEXT])


if __name__ == "__main__":
    raise SystemExit(run(main))
