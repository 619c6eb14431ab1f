"""The embedded Whisper (tiny.en) on phone-band caller audio: the agent's vocabulary corrects
names it mishears, garbled sound and a noisy line get a low confidence, and the decode cap holds
whatever the prompt's length.

``tests/data/audio/*-caller-8k.wav`` were synthesized once with Piper (en_US joe, noise 0) and
sent over the phone band as ``make bench-stt`` does (``benchmarks/stt/speech.py``): 8 kHz
mu-law, stored decoded as 8 kHz PCM16; here they are mu-law encoded again and decoded as the
gateway does (``InboundMulaw8k``) to the 16 kHz the STT service gets.
"""

from __future__ import annotations

import base64
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import pytest_asyncio
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from trunkline.audio.mulaw import pcm16_to_mulaw
from trunkline.audio.telephony import InboundMulaw8k
from trunkline.stt.backends.whisper import (
    WhisperRecognizer,
    bundled_model_path,
    max_length,
    pcm16_to_float,
)
from trunkline.stt.core import Vocabulary

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")

AUDIO = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio"
ACME = Vocabulary(
    (
        "Acme Dental", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
        "Sunday", "Ava", "Main Street", "Springfield", "Teeth whitening", "Emergency visit",
    )
)  # fmt: skip
MIN_CONFIDENCE = 0.5  # the threshold bench-stt proposes (intents.min_stt_confidence)


def caller_audio(name: str) -> bytes:
    """A caller WAV as the gateway hands it to STT: 16 kHz PCM16 from 20 ms mu-law payloads."""
    with wave.open(str(AUDIO / name), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        mulaw = pcm16_to_mulaw(w.readframes(w.getnframes()))
    inbound = InboundMulaw8k()
    frames = [
        frame
        for i in range(0, len(mulaw), 160)
        for frame in inbound.push(base64.b64encode(mulaw[i : i + 160]).decode())
    ]
    return b"".join(f.pcm for f in [*frames, *inbound.flush()])


def garbled(pcm: bytes) -> bytes:
    """Speech-like sound with no words: 120 ms pieces reversed, in a fixed shuffled order."""
    samples = np.frombuffer(pcm, "<i2")
    size = 1920
    pieces = [samples[i : i + size][::-1] for i in range(0, samples.size, size)]
    order = np.random.default_rng(7).permutation(len(pieces))
    return np.concatenate([pieces[i] for i in order]).astype("<i2").tobytes()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recognizer() -> AsyncIterator[WhisperRecognizer]:
    rec = WhisperRecognizer()
    await rec.start()
    yield rec
    await rec.close()


@in_module_loop
@pytest.mark.parametrize(
    ("wav", "misheard", "name"),
    [
        # heard "Could I have a call me back before noon on Wednesday?" without it
        ("ava-call-back-caller-8k.wav", "ava", "Could Ava call me back"),
        # heard "is acting to be dental on Main Street ..." without it
        ("acme-main-street-caller-8k.wav", "acme", "Acme Dental on Main Street"),
    ],
)
async def test_the_agents_vocabulary_corrects_a_misheard_name(
    recognizer: WhisperRecognizer, wav: str, misheard: str, name: str
) -> None:
    audio = caller_audio(wav)
    plain = await recognizer.transcribe(audio)
    biased = await recognizer.transcribe(audio, vocabulary=ACME)
    assert misheard not in plain.text.lower()
    assert name.lower() in biased.text.lower()
    assert biased.confidence >= MIN_CONFIDENCE


@in_module_loop
async def test_garbled_sound_and_a_noisy_line_get_a_low_confidence(
    recognizer: WhisperRecognizer,
) -> None:
    clear = caller_audio("ava-call-back-caller-8k.wav")
    noise = (np.random.default_rng(3).normal(0, 1000, 32_000)).astype("<i2").tobytes()
    heard_clear = await recognizer.transcribe(clear, vocabulary=ACME)
    heard_garbled = await recognizer.transcribe(garbled(clear), vocabulary=ACME)
    heard_noise = await recognizer.transcribe(noise, vocabulary=ACME)
    assert heard_clear.confidence >= MIN_CONFIDENCE
    assert heard_garbled.confidence < MIN_CONFIDENCE / 2
    assert heard_noise.no_speech or heard_noise.confidence < MIN_CONFIDENCE / 2


@pytest.mark.parametrize("prompt_words", [0, 8, 40])
def test_max_length_lets_exactly_the_wanted_tokens_be_generated(prompt_words: int) -> None:
    """The cap is what the backend asks for, with or without a vocabulary prompt before it
    (ctranslate2 counts ``max_length`` in a way of its own; see ``max_length``)."""
    path = bundled_model_path()
    model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
    tokenizer = Tokenizer(
        tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")),
        multilingual=False,
        task="transcribe",
        language="en",
    )
    samples = pcm16_to_float(caller_audio("acme-main-street-caller-8k.wav"))
    mel = FeatureExtractor(feature_size=model.n_mels)(samples)
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
    words = " ".join(["Saturday"] * prompt_words)
    prefix = [tokenizer.sot_prev, *tokenizer.encode(" " + words)] if prompt_words else []
    prompt = [*prefix, *tokenizer.sot_sequence, tokenizer.no_timestamps]
    for wanted in (3, 6):  # the sentence has more tokens than either
        result = model.generate(
            features, [prompt], beam_size=1, max_length=max_length(len(prompt), wanted)
        )[0]
        assert len(result.sequences_ids[0]) == wanted
