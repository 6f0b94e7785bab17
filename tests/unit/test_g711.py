"""G.711 must be bit-exact: telephony peers decode with the ITU tables."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from realtime.audio import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # reference oracle only (removed in Python 3.13)
    except ImportError:  # pragma: no cover - Python >= 3.13
        audioop = None

needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop oracle unavailable")

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@needs_audioop
def test_mulaw_encode_matches_audioop_for_every_int16() -> None:
    assert g711.mulaw_encode(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.tobytes(), 2)


@needs_audioop
def test_alaw_encode_matches_audioop_for_every_int16() -> None:
    assert g711.alaw_encode(ALL_INT16) == audioop.lin2alaw(ALL_INT16.tobytes(), 2)


@needs_audioop
def test_mulaw_decode_matches_audioop_for_every_code() -> None:
    decoded = g711.mulaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


@needs_audioop
def test_alaw_decode_matches_audioop_for_every_code() -> None:
    decoded = g711.alaw_decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_known_silence_codes() -> None:
    silence = np.zeros(3, dtype=np.int16)
    assert g711.mulaw_encode(silence) == b"\xff\xff\xff"
    assert g711.alaw_encode(silence) == b"\xd5\xd5\xd5"


def test_codes_round_trip() -> None:
    codes = np.arange(256)
    mu = np.frombuffer(g711.mulaw_encode(g711.mulaw_decode(ALL_CODES)), dtype=np.uint8)
    # 0x7F is mu-law "negative zero"; it decodes to 0, which re-encodes as 0xFF.
    assert np.array_equal(np.delete(mu, 0x7F), np.delete(codes, 0x7F))
    assert mu[0x7F] == 0xFF
    a = np.frombuffer(g711.alaw_encode(g711.alaw_decode(ALL_CODES)), dtype=np.uint8)
    assert np.array_equal(a, codes)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.mulaw_encode, g711.mulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_quantisation_error_is_bounded(encode, decode) -> None:
    # Logarithmic companding: error stays within ~1/16 of the magnitude (+ small floor).
    restored = decode(encode(ALL_INT16)).astype(np.int32)
    err = np.abs(restored - ALL_INT16.astype(np.int32))
    assert np.all(err <= np.abs(ALL_INT16.astype(np.int32)) // 16 + 64)


def test_accepts_2d_and_empty_input() -> None:
    assert g711.mulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert g711.alaw_decode(b"").shape == (0,)
    assert len(g711.alaw_encode(np.zeros((1, 5), dtype=np.int16))) == 5
