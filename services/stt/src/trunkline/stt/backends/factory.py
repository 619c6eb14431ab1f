"""Build the recognizer the settings name. The SDK-bound backend module is imported only here,
when chosen, so a ``riva`` process never loads CTranslate2 and vice versa."""

from __future__ import annotations

from trunkline.stt.audio_in import BACKEND_RATE
from trunkline.stt.backends.base import RecognizerOptions, SpeechRecognizer
from trunkline.stt.core import NoSpeechPolicy
from trunkline.stt.settings import SttSettings


def build_recognizer(settings: SttSettings) -> SpeechRecognizer:
    options = RecognizerOptions(
        sample_rate=BACKEND_RATE,
        final_timeout_s=settings.final_timeout_s,
        retries=settings.retries,
        retry_backoff_s=settings.retry_backoff_s,
    )
    if settings.backend == "riva":
        from trunkline.stt.backends.riva import RivaConfig, RivaRecognizer  # noqa: PLC0415

        config = RivaConfig(
            address=settings.riva_addr,
            language_code=settings.language,
            model=settings.riva_model,
            automatic_punctuation=settings.riva_punctuation,
            interim_results=settings.partial_interval_s > 0,
        )
        return RivaRecognizer(config, options)
    from trunkline.stt.backends.whisper import WhisperConfig, WhisperRecognizer  # noqa: PLC0415

    whisper = WhisperConfig(
        model_path=settings.whisper_model_path,
        compute_type=settings.whisper_compute_type,
        cpu_threads=settings.cpu_threads,
        partial_interval_s=settings.partial_interval_s,
        no_speech=NoSpeechPolicy(prob_threshold=settings.no_speech_threshold),
    )
    return WhisperRecognizer(whisper, options)
