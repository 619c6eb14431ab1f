from __future__ import annotations

import base64

import numpy as np
import pytest
from numpy.typing import NDArray

from trunkline.audio import (
    InboundMulaw8k,
    OutboundMulaw8k,
    inbound_from_mulaw8k,
    mulaw_decode,
    mulaw_encode,
    outbound_to_mulaw8k,
)

pytestmark = pytest.mark.unit


def sine(freq: float, rate: int, seconds: float) -> NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    out: NDArray[np.int16] = np.rint(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return out


def peak_hz(samples: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def twilio_payloads(seconds: float) -> list[str]:
    mulaw = mulaw_encode(sine(1000.0, 8000, seconds))
    return [base64.b64encode(mulaw[i : i + 160]).decode() for i in range(0, len(mulaw), 160)]


def test_inbound_stream_yields_20ms_16k_frames_of_the_same_sound() -> None:
    inbound = InboundMulaw8k()
    frames = [f for p in twilio_payloads(1.0) for f in inbound.push(p)] + inbound.flush()
    assert all(len(f.pcm) == 640 and f.sample_rate == 16000 for f in frames)
    assert [f.sequence for f in frames] == list(range(len(frames)))
    assert len(frames) in (50, 51)  # one second; the last may be padded
    pcm = np.frombuffer(b"".join(f.pcm for f in frames), "<i2")
    assert abs(peak_hz(pcm[:16000], 16000) - 1000.0) <= 2.0


def test_inbound_one_shot_matches_duration() -> None:
    payload = base64.b64encode(mulaw_encode(sine(1000.0, 8000, 0.5))).decode()
    pcm = inbound_from_mulaw8k(payload)
    assert len(pcm) == 16000  # 0.5 s * 16000 Hz * 2 bytes


def test_malformed_payload_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="malformed media payload"):
        InboundMulaw8k().push("not base64 !!")


def test_outbound_stream_yields_160_byte_payloads_of_the_same_sound() -> None:
    outbound = OutboundMulaw8k(in_rate=22050)
    pcm = sine(1000.0, 22050, 1.0).astype("<i2").tobytes()
    chunks = [pcm[i : i + 4411] for i in range(0, len(pcm), 4411)]  # odd sizes on purpose
    payloads = [p for c in chunks for p in outbound.push(c)] + outbound.flush()
    raw = [base64.b64decode(p) for p in payloads]
    assert all(len(r) == 160 for r in raw)
    assert len(raw) in (50, 51)
    decoded = mulaw_decode(b"".join(raw))
    assert abs(peak_hz(decoded[:8000], 8000) - 1000.0) <= 2.0


def test_outbound_one_shot_round_trips_through_inbound() -> None:
    pcm16k = sine(500.0, 16000, 0.5)
    payload = outbound_to_mulaw8k(pcm16k.astype("<i2").tobytes())
    assert len(base64.b64decode(payload)) == 4000
    back = np.frombuffer(inbound_from_mulaw8k(payload), "<i2")
    assert len(back) == len(pcm16k)
    assert abs(peak_hz(back, 16000) - 500.0) <= 2.0
