"""Telephony media streams (Twilio, Plivo): base64 mu-law 8 kHz <-> internal 16 kHz frames."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from trunkline.audio.fir import FirResampler
from trunkline.audio.frames import INTERNAL_RATE, AudioFrame, Framer
from trunkline.audio.mulaw import mulaw_decode, mulaw_encode
from trunkline.audio.pcm import int16_to_pcm16, pcm16_to_int16
from trunkline.audio.resample import Quality, Resampler, resample

TELEPHONY_RATE = 8000
MULAW_FRAME_BYTES = TELEPHONY_RATE * 20 // 1000  # 160 bytes = 20 ms of mu-law at 8 kHz
MULAW_SILENCE = b"\xff"

StreamQuality = Quality | Literal["FIR"]
"""``"FIR"`` (default for live streams): a short FIR, ~1-2 ms delay; integer ratios only."""


def _stream_resampler(
    in_rate: int, out_rate: int, quality: StreamQuality
) -> Resampler | FirResampler:
    if quality == "FIR" and max(in_rate, out_rate) % min(in_rate, out_rate) == 0:
        return FirResampler(in_rate, out_rate)
    return Resampler(in_rate, out_rate, "HQ" if quality == "FIR" else quality)


def decode_payload(payload_b64: str) -> bytes:
    """Base64 media payload -> mu-law bytes; a clear ``ValueError`` on malformed input."""
    try:
        return base64.b64decode(payload_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"malformed media payload (not base64): {exc}") from None


def inbound_from_mulaw8k(payload_b64: str, quality: Quality = "HQ") -> bytes:
    """One whole base64 mu-law 8 kHz payload -> 16 kHz PCM16 bytes."""
    samples = mulaw_decode(decode_payload(payload_b64))
    return int16_to_pcm16(resample(samples, TELEPHONY_RATE, INTERNAL_RATE, quality))


def outbound_to_mulaw8k(pcm: bytes, in_rate: int = INTERNAL_RATE, quality: Quality = "HQ") -> str:
    """Whole PCM16 bytes at ``in_rate`` -> one base64 mu-law 8 kHz payload."""
    samples = resample(pcm16_to_int16(pcm), in_rate, TELEPHONY_RATE, quality)
    return base64.b64encode(mulaw_encode(samples)).decode("ascii")


class InboundMulaw8k:
    """Streaming: media payloads in, internal 20 ms 16 kHz ``AudioFrame``s out."""

    def __init__(self, quality: StreamQuality = "FIR") -> None:
        self._resampler = _stream_resampler(TELEPHONY_RATE, INTERNAL_RATE, quality)
        self._framer = Framer(INTERNAL_RATE)

    def push(self, payload_b64: str) -> list[AudioFrame]:
        """Decode one payload; return the frames now complete (FIR: ~1 ms held back)."""
        samples = mulaw_decode(decode_payload(payload_b64))
        return self._framer.push(int16_to_pcm16(self._resampler.process(samples)))

    def flush(self) -> list[AudioFrame]:
        """End of stream: everything still held, the last frame padded with silence."""
        frames = self._framer.push(int16_to_pcm16(self._resampler.flush()))
        last = self._framer.flush()
        return [*frames, last] if last is not None else frames


class OutboundMulaw8k:
    """Streaming: PCM16 at ``in_rate`` in, base64 mu-law 8 kHz payloads of 20 ms out. At
    ``in_rate`` 8000 nothing is resampled (TTS rendered at the telephony rate): mu-law only."""

    def __init__(self, in_rate: int = INTERNAL_RATE, quality: StreamQuality = "FIR") -> None:
        self._resampler = (
            None
            if in_rate == TELEPHONY_RATE
            else _stream_resampler(in_rate, TELEPHONY_RATE, quality)
        )
        self._odd = b""
        self._buffer = bytearray()

    def _payloads(self) -> list[str]:
        whole = len(self._buffer) - len(self._buffer) % MULAW_FRAME_BYTES
        out = [
            base64.b64encode(self._buffer[i : i + MULAW_FRAME_BYTES]).decode("ascii")
            for i in range(0, whole, MULAW_FRAME_BYTES)
        ]
        del self._buffer[:whole]
        return out

    def push(self, pcm: bytes) -> list[str]:
        """Add PCM16 audio; return the complete 20 ms payloads now available."""
        if self._resampler is None:
            data = self._odd + pcm
            cut = len(data) - len(data) % 2
            self._odd = data[cut:]
            self._buffer += mulaw_encode(pcm16_to_int16(data[:cut]))
        else:
            self._buffer += mulaw_encode(pcm16_to_int16(self._resampler.process_pcm16(pcm)))
        return self._payloads()

    def flush(self) -> list[str]:
        """End of stream: the rest, the last payload padded with mu-law silence."""
        if self._resampler is not None:
            self._buffer += mulaw_encode(self._resampler.flush())
        if len(self._buffer) % MULAW_FRAME_BYTES:
            pad = MULAW_FRAME_BYTES - len(self._buffer) % MULAW_FRAME_BYTES
            self._buffer += MULAW_SILENCE * pad
        return self._payloads()
