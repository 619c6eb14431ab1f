"""G.711 mu-law encode/decode, table based and bit-exact with the ITU reference (Sun g711.c).

Encoding works on the 14 most significant bits of each 16-bit sample, exactly as the reference
``linear2ulaw(pcm >> 2)`` (and the removed ``audioop.lin2ulaw``) do.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from numpy.typing import NDArray

from trunkline.audio.pcm import SILENCE_DBFS, pcm16_to_int16

_BIAS = 0x84
_CLIP14 = 8159  # largest 14-bit magnitude the reference encoder accepts
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


@cache
def decode_table() -> NDArray[np.int16]:
    """The 256 linear values of the mu-law code words (0x00 -> -32124, 0xFF -> 0)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    table = np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)
    table.flags.writeable = False
    return table


@cache
def encode_table() -> NDArray[np.uint8]:
    """Code word for each of the 65536 int16 values, indexed by ``sample & 0xFFFF``."""
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit input, as the reference
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.where(negative, -pcm, pcm)
    magnitude = np.minimum(magnitude, _CLIP14) + (_BIAS >> 2)
    segment = np.searchsorted(_SEG_END, magnitude, side="left")
    segment = np.minimum(segment, 7)  # past the last segment the reference returns 0x7F ^ mask
    over = magnitude > _SEG_END[-1]
    codes = np.where(over, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    codes = codes ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768) & 0xFFFF] = codes.astype(np.uint8)
    table.flags.writeable = False
    return table


@cache
def _square_table() -> NDArray[np.float64]:
    """The square of each code word's linear value (integers, exact in float64)."""
    table = decode_table().astype(np.float64) ** 2
    table.flags.writeable = False
    return table


def mulaw_dbfs(data: bytes) -> float:
    """RMS level of mu-law audio in dBFS: the value ``rms_dbfs`` gives for its decoded float
    samples, from one table look-up per byte (the squares are integers, so the sum is exact)."""
    if not data:
        return SILENCE_DBFS
    total = float(_square_table()[np.frombuffer(data, dtype=np.uint8)].sum())
    mean = total / len(data) / 1073741824.0  # 32768 ** 2
    if mean <= 0.0:
        return SILENCE_DBFS
    return max(20.0 * math.log10(math.sqrt(mean)), SILENCE_DBFS)


def mulaw_encode(samples: NDArray[np.int16]) -> bytes:
    """int16 samples -> mu-law bytes (one byte per sample)."""
    index = np.asarray(samples, dtype=np.int16).view(np.uint16)
    return encode_table()[index].tobytes()


def mulaw_decode(data: bytes) -> NDArray[np.int16]:
    """mu-law bytes -> int16 samples."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return decode_table()[codes]


def pcm16_to_mulaw(pcm: bytes) -> bytes:
    """Little-endian PCM16 bytes -> mu-law bytes."""
    return mulaw_encode(pcm16_to_int16(pcm))


def mulaw_to_pcm16(data: bytes) -> bytes:
    """mu-law bytes -> little-endian PCM16 bytes."""
    return mulaw_decode(data).astype("<i2").tobytes()
