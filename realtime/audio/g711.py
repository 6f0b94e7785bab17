"""G.711 mu-law and A-law codecs (ITU-T G.711), vectorised with numpy.

Telephony clients (Twilio-style media streams, SIP bridges) want 8-bit G.711.
Each direction is a lookup table built once at import: a 65536-entry table for
encoding (indexed by the int16 bit pattern) and a 256-entry table for decoding,
so per-chunk work is a single fancy-index. The tables follow the classic
segment/quantisation algorithm and are bit-exact with the ITU reference tables.
"""

from __future__ import annotations

import numpy as np

_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_SIGN_BIT = 0x80

_ULAW_BIAS = 0x84  # 132, applied on the 16-bit scale
_ULAW_CLIP = 8159  # clip of the 14-bit magnitude
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _segment(mag: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
    """Index of the first segment whose end is >= mag (8 when beyond the last)."""
    return np.searchsorted(seg_end, mag, side="left")


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit linear
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, _ULAW_SEG_END)
    code = (seg << _SEG_SHIFT) | ((mag >> (seg + 1)) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code) ^ mask
    return _reorder_by_bits(code.astype(np.uint8))


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit linear
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, _ALAW_SEG_END)
    shift = np.maximum(seg, 1)
    code = (seg << _SEG_SHIFT) | ((mag >> shift) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code) ^ mask
    return _reorder_by_bits(code.astype(np.uint8))


def _reorder_by_bits(table_by_value: np.ndarray) -> np.ndarray:
    """Re-index a table built for values -32768..32767 by the uint16 bit pattern."""
    values = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)
    out = np.empty(65536, dtype=np.uint8)
    out[values] = table_by_value
    return out


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (u & _SEG_MASK) >> _SEG_SHIFT
    return np.where(u & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & _SEG_MASK) >> _SEG_SHIFT
    t = (a & _QUANT_MASK) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & _SIGN_BIT, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ALAW_ENC = _build_alaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()


def _as_index(pcm: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1).view(np.uint16)


def mulaw_encode(pcm: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 mu-law bytes (one byte per sample)."""
    return _ULAW_ENC[_as_index(pcm)].tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 mu-law bytes to int16 samples."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """Encode int16 samples to G.711 A-law bytes (one byte per sample)."""
    return _ALAW_ENC[_as_index(pcm)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 A-law bytes to int16 samples."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]
