"""``python -m trunkline.stt``: the stt process.

It listens at once (health NOT_SERVING), loads the model in the background and turns SERVING
only when the recognizer is ready.
"""

from __future__ import annotations

import os

# OpenMP worker threads spin while idle by default, which on a small CPU steals the cores that
# other models in the process need (PACKAGES.md: STT 0.6 -> 1.0 s beside a spinning pool). The
# runtime reads the variable once, when CTranslate2 / onnxruntime is first imported, so it is set
# here, before any backend import. setdefault: an operator's explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging

from trunkline.runtime import Connecting, run, serve
from trunkline.stt.backends import SpeechRecognizer
from trunkline.stt.backends.factory import build_recognizer
from trunkline.stt.server import SPEECH_TO_TEXT, SpeechToTextService, register
from trunkline.stt.settings import SttSettings

log = logging.getLogger("trunkline.stt")


async def load(recognizer: SpeechRecognizer) -> SpeechRecognizer:
    try:
        await recognizer.start()
    except Exception:
        log.exception("stt backend %s failed to start", recognizer.backend_name)
        raise
    log.info("stt backend %s ready", recognizer.backend_name)
    return recognizer


async def main() -> None:
    settings = SttSettings.load()
    recognizer = build_recognizer(settings)
    servicer = SpeechToTextService(recognizer, language=settings.language)
    loading = Connecting(lambda: load(recognizer), name="stt-model")

    async def close() -> None:
        await loading.close(lambda rec: rec.close())

    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[SPEECH_TO_TEXT],
        ready=servicer.ready,
        on_shutdown=[close],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
