"""The benchmark's caller audio: labelled texts synthesized by several voices and sent over the
phone band exactly as a Twilio call delivers them to the gateway.

Caller side (as ``trunkline call`` sends it): the voice's PCM16 resampled to 8 kHz (soxr HQ)
and mu-law encoded, cut in 20 ms media payloads. Gateway side: each payload through
:class:`trunkline.audio.telephony.InboundMulaw8k` (mu-law decode, FIR upsampling to 16 kHz), the
16 kHz PCM16 the STT service gets. Degraded copies (noise, muffled, garbled) are derived from
the same phone-band audio for the confidence calibration.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trunkline.audio import mulaw_encode, resample
from trunkline.audio.telephony import MULAW_FRAME_BYTES, TELEPHONY_RATE, InboundMulaw8k

RATE = 16_000
Int16 = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    speak: Callable[[str], tuple[Int16, int]]  # text -> (samples, rate)


def piper_voices() -> list[Voice]:
    """The Piper voice the platform ships (en_US joe), at its own pace and 15% faster."""
    from piper.config import SynthesisConfig  # noqa: PLC0415

    from trunkline.tts.backends.piper import PiperSettings, load_voice  # noqa: PLC0415

    voice = load_voice(PiperSettings())
    rate = voice.config.sample_rate

    def speaker(length_scale: float) -> Callable[[str], tuple[Int16, int]]:
        def speak(text: str) -> tuple[Int16, int]:
            # noise 0: the same audio every run (Piper otherwise samples its noise)
            config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
            chunks = [c.audio_int16_array for c in voice.synthesize(text, config)]
            return np.concatenate(chunks).astype(np.int16), rate

        return speak

    return [Voice("piper-joe", speaker(1.0)), Voice("piper-joe-fast", speaker(0.85))]


def espeak_voices() -> list[Voice]:
    """espeak-ng (a formant synthesizer: robotic, hard for Whisper) male and female, if the
    ``espeak-ng`` program is installed (Debian: ``apt-get install espeak-ng``)."""
    program = shutil.which("espeak-ng")
    if program is None:
        return []

    def speaker(variant: str) -> Callable[[str], tuple[Int16, int]]:
        def speak(text: str) -> tuple[Int16, int]:
            out = subprocess.run(
                [program, "-v", variant, "--stdout", text], capture_output=True, check=True
            ).stdout
            with wave.open(io.BytesIO(out)) as wav:
                samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
                return samples.astype(np.int16), wav.getframerate()

        return speak

    return [Voice("espeak-en-us", speaker("en-us")), Voice("espeak-en-us-f3", speaker("en-us+f3"))]


def caller_mulaw(samples: Int16, rate: int) -> bytes:
    """What the caller sends: 8 kHz mu-law."""
    return mulaw_encode(resample(samples, rate, TELEPHONY_RATE))


def gateway_pcm(mulaw: bytes) -> bytes:
    """What the gateway hands the STT service: the payloads decoded to 16 kHz PCM16."""
    inbound = InboundMulaw8k()
    frames = []
    for start in range(0, len(mulaw), MULAW_FRAME_BYTES):
        payload = base64.b64encode(mulaw[start : start + MULAW_FRAME_BYTES]).decode("ascii")
        frames += inbound.push(payload)
    frames += inbound.flush()
    return b"".join(frame.pcm for frame in frames)


def phone_band(samples: Int16, rate: int) -> bytes:
    return gateway_pcm(caller_mulaw(samples, rate))


def _pcm(samples: npt.NDArray[np.float64]) -> Int16:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def with_noise(pcm: bytes, snr_db: float, seed: int) -> bytes:
    """The utterance under white noise at ``snr_db`` (a noisy line), over the phone band again."""
    clean = np.frombuffer(pcm, "<i2").astype(np.float64)
    power = float(np.mean(clean**2)) or 1.0
    noise = np.random.default_rng(seed).normal(
        0.0, np.sqrt(power / 10 ** (snr_db / 10)), clean.size
    )
    return phone_band(_pcm(clean + noise), RATE)


def muffled(pcm: bytes) -> bytes:
    """Mumbled into the phone: quiet (-20 dB) and low-passed below ~700 Hz."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    kernel = np.hanning(23)
    low = np.convolve(samples, kernel / kernel.sum(), mode="same")
    return phone_band(_pcm(low * 0.1), RATE)


def garbled(pcm: bytes, seed: int) -> bytes:
    """Speech-like sound with no words: the utterance's 120 ms pieces reversed and shuffled."""
    samples = np.frombuffer(pcm, "<i2")
    piece = int(0.12 * RATE)
    pieces = [samples[i : i + piece][::-1] for i in range(0, samples.size, piece)]
    order = np.random.default_rng(seed).permutation(len(pieces))
    return phone_band(np.concatenate([pieces[i] for i in order]).astype(np.int16), RATE)


def line_noise(seconds: float, seed: int) -> bytes:
    """No speech: a noisy line (white noise at about -30 dBFS)."""
    noise = np.random.default_rng(seed).normal(0.0, 1000.0, int(seconds * RATE))
    return phone_band(_pcm(noise), RATE)
