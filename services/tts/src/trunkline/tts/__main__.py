"""``python -m trunkline.tts``: the tts process.

It listens at once (health NOT_SERVING), loads the voice in the background and turns SERVING
only when the synthesizer is ready.
"""

from __future__ import annotations

import os

# OpenMP worker threads spin while idle by default, which on a small CPU steals the cores that
# other models in the process need (PACKAGES.md: TTS 0.1 -> 0.33 s beside a spinning pool). The
# runtime reads the variable once, when onnxruntime / CTranslate2 is first imported, so it is set
# here, before any backend import (Piper's session also turns spinning off itself).
# setdefault: an operator's explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging

from trunkline.runtime import Connecting, run, serve
from trunkline.tts.backends import Synthesizer
from trunkline.tts.backends.factory import build_synthesizer
from trunkline.tts.server import TEXT_TO_SPEECH, TextToSpeechService, register
from trunkline.tts.settings import TtsSettings

log = logging.getLogger("trunkline.tts")


async def load(synthesizer: Synthesizer, default_voice: str) -> Synthesizer:
    try:
        await synthesizer.start()
        known = [voice.voice_id for voice in synthesizer.voices()]
        if default_voice and default_voice not in known:
            raise ValueError(f"TTS_DEFAULT_VOICE {default_voice!r} is not a voice; known: {known}")
    except Exception:
        log.exception("tts backend %s failed to start", synthesizer.backend_name)
        await synthesizer.close()
        raise
    log.info("tts backend %s ready", synthesizer.backend_name, extra={"voices": known})
    return synthesizer


async def main() -> None:
    settings = TtsSettings.load()
    synthesizer = build_synthesizer(settings)
    servicer = TextToSpeechService(synthesizer, default_voice=settings.default_voice)
    loading = Connecting(lambda: load(synthesizer, settings.default_voice), name="tts-model")

    async def close() -> None:
        await loading.close(lambda synth: synth.close())

    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[TEXT_TO_SPEECH],
        ready=servicer.ready,
        on_shutdown=[close],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
