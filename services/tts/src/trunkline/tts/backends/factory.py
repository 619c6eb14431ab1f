"""Build the synthesizer the settings name. The SDK-bound backend module is imported only here,
when chosen, so a ``riva`` process never loads onnxruntime/Piper and vice versa."""

from __future__ import annotations

from trunkline.tts.backends.base import SynthesisOptions, Synthesizer
from trunkline.tts.settings import TtsSettings


def build_synthesizer(settings: TtsSettings) -> Synthesizer:
    options = SynthesisOptions(
        chunk_s=settings.chunk_s,
        first_audio_timeout_s=settings.first_audio_timeout_s,
        retries=settings.retries,
        retry_backoff_s=settings.retry_backoff_s,
        trim_leading_dbfs=settings.trim_leading_dbfs or None,
    )
    if settings.backend == "riva":
        from trunkline.tts.backends.riva import RivaSynthesizer, RivaTtsConfig  # noqa: PLC0415

        config = RivaTtsConfig(
            address=settings.riva_addr,
            voice_name=settings.riva_voice,
            language_code=settings.riva_language,
            sample_rate=settings.riva_sample_rate,
        )
        return RivaSynthesizer(config, options)
    from trunkline.tts.backends.piper import PiperSettings, PiperSynthesizer  # noqa: PLC0415

    piper = PiperSettings(
        model_path=settings.piper_model_path,
        config_path=settings.piper_config_path,
        voice_id=settings.piper_voice_id,
        cpu_threads=settings.cpu_threads,
    )
    return PiperSynthesizer(piper, options)
