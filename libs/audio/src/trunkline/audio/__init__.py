"""mu-law/PCM16 codecs, resampling and 20 ms framing.

The internal frame type is :class:`AudioFrame`: 16 kHz mono PCM16, 20 ms (640 bytes).
Transport adapters convert with :class:`InboundMulaw8k` / :class:`OutboundMulaw8k` (telephony
media streams; a low-latency :class:`FirResampler` by default) or a :class:`Resampler` plus a
:class:`Framer`.
"""

from trunkline.audio.fir import FirResampler
from trunkline.audio.frames import (
    FRAME_BYTES,
    FRAME_MS,
    INTERNAL_RATE,
    AudioFrame,
    Framer,
    frame_bytes,
)
from trunkline.audio.mulaw import (
    mulaw_dbfs,
    mulaw_decode,
    mulaw_encode,
    mulaw_to_pcm16,
    pcm16_to_mulaw,
)
from trunkline.audio.pcm import (
    SILENCE_DBFS,
    float32_to_int16,
    float32_to_pcm16,
    int16_to_float32,
    int16_to_pcm16,
    pcm16_dbfs,
    pcm16_to_float32,
    pcm16_to_int16,
    rms_dbfs,
)
from trunkline.audio.resample import SUPPORTED_RATES, Quality, Resampler, resample, resample_pcm16
from trunkline.audio.telephony import (
    MULAW_FRAME_BYTES,
    TELEPHONY_RATE,
    InboundMulaw8k,
    OutboundMulaw8k,
    decode_payload,
    inbound_from_mulaw8k,
    outbound_to_mulaw8k,
)

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "INTERNAL_RATE",
    "MULAW_FRAME_BYTES",
    "SILENCE_DBFS",
    "SUPPORTED_RATES",
    "TELEPHONY_RATE",
    "AudioFrame",
    "FirResampler",
    "Framer",
    "InboundMulaw8k",
    "OutboundMulaw8k",
    "Quality",
    "Resampler",
    "decode_payload",
    "float32_to_int16",
    "float32_to_pcm16",
    "frame_bytes",
    "inbound_from_mulaw8k",
    "int16_to_float32",
    "int16_to_pcm16",
    "mulaw_dbfs",
    "mulaw_decode",
    "mulaw_encode",
    "mulaw_to_pcm16",
    "outbound_to_mulaw8k",
    "pcm16_dbfs",
    "pcm16_to_float32",
    "pcm16_to_int16",
    "pcm16_to_mulaw",
    "resample",
    "resample_pcm16",
    "rms_dbfs",
]
