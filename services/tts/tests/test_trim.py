"""Leading silence cut from a clause: pure, over pieces, and through the synthesizer ABC."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np
import pytest

from trunkline.tts.backends import NativeAudio, StreamSettings, SynthesisOptions, Synthesizer
from trunkline.tts.backends.trim import LeadingSilence
from trunkline.tts.core import SpeechChunk, VoiceInfo

pytestmark = pytest.mark.unit

RATE = 8_000


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (level * np.cos(2 * np.pi * 300 * t)).astype(np.float32)


def hiss(seconds: float) -> np.ndarray:
    return np.full(round(seconds * RATE), 0.001, np.float32)  # -60 dBFS: silence here


def test_the_lead_is_cut_to_keep_s_before_the_first_sound() -> None:
    trim = LeadingSilence(RATE, threshold_dbfs=-40.0, keep_s=0.01)
    out = trim.push(np.concatenate([hiss(0.05), tone(0.1), hiss(0.2)]))
    assert len(out) == round(0.01 * RATE) + round(0.3 * RATE)
    assert np.all(out[:80] == np.float32(0.001))
    assert abs(out[81]) > 0  # the tone starts right after what was kept
    assert trim.done
    later = hiss(0.1)
    assert trim.push(later) is later  # trailing and later silence is never cut


def test_a_lead_longer_than_a_piece_is_cut_across_pieces() -> None:
    trim = LeadingSilence(RATE, threshold_dbfs=-40.0, keep_s=0.01)
    assert trim.push(hiss(0.03)).size == 0
    assert trim.push(hiss(0.03)).size == 0
    assert not trim.done
    out = trim.push(np.concatenate([hiss(0.005), tone(0.05)]))
    # 10 ms kept: 5 ms of this piece's lead plus 5 ms held back from the pieces before
    assert len(out) == 80 + round(0.05 * RATE)
    assert trim.done


def test_without_keep_nothing_before_the_sound_is_kept_and_bad_settings_are_refused() -> None:
    out = LeadingSilence(RATE, threshold_dbfs=-40.0, keep_s=0).push(
        np.concatenate([hiss(0.02), tone(0.02)])
    )
    assert len(out) == round(0.02 * RATE)
    with pytest.raises(ValueError, match="threshold_dbfs"):
        LeadingSilence(RATE, threshold_dbfs=0.0)
    with pytest.raises(ValueError, match="keep_s"):
        LeadingSilence(RATE, threshold_dbfs=-40.0, keep_s=-1)


class LeadSynthesizer(Synthesizer):
    """50 ms of near-silence, then 100 ms of tone per clause, in two pieces."""

    backend_name = "lead"

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo("lead-voice", "en-US", RATE, "lead")]

    async def _synthesize_impl(
        self, text: str, voice: VoiceInfo, speaking_rate: float
    ) -> AsyncGenerator[NativeAudio, None]:
        yield NativeAudio(hiss(0.05), RATE)
        yield NativeAudio(tone(0.1), RATE)


async def spoken(synth: Synthesizer) -> np.ndarray:
    chunks = [e async for e in synth.synthesize("Hello there.", StreamSettings(sample_rate=RATE))]
    pcm = b"".join(c.pcm for c in chunks if isinstance(c, SpeechChunk))
    return np.frombuffer(pcm, "<i2")


async def test_each_clause_starts_with_its_sound_unless_trimming_is_off() -> None:
    trimmed = await spoken(LeadSynthesizer())
    kept = await spoken(LeadSynthesizer(SynthesisOptions(trim_leading_dbfs=None)))
    assert len(kept) == round(0.15 * RATE)
    assert len(trimmed) == round(0.11 * RATE)  # 10 ms of the lead kept, 40 ms cut
    first = int(np.flatnonzero(np.abs(trimmed) > 0.01 * 32768)[0])
    assert first <= round(0.011 * RATE)
