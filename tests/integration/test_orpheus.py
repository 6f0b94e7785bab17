"""The Orpheus engine end to end: a tiny random Llama GGUF and a tiny random SNAC, real code paths.

The GGUF (f32, so batched and solo generation agree bit for bit) has Orpheus's
`<custom_token_N>` vocabulary; the SNAC checkpoint is written to disk and loaded
through the real loader. Sequences run to `max_tokens` (the random model almost
never picks end-of-speech), so every segment has a known number of frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.gguf_models import llama_server, write_tiny_orpheus_gguf
from tests.realtime_client import eventually, run, session
from tests.server import LiveServer, wait_for
from tests.snac_models import tiny_snac, write_checkpoint

MAX_TOKENS = 140  # 20 frames: 40960 samples, 1.71 s per segment


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("orpheus")
    write_checkpoint(tiny_snac(seed=3), folder / "snac")
    return {
        "gguf": write_tiny_orpheus_gguf(folder / "tiny.gguf", weight_type="f32"),
        "framed": write_tiny_orpheus_gguf(folder / "framed.gguf", frame_bias=8.0),
        "snac": folder / "snac",
    }


def orpheus_settings(models: dict[str, Path], **extra: object) -> dict[str, object]:
    return {
        "model": str(models["gguf"]), "snac_model": str(models["snac"]), "max_tokens": MAX_TOKENS,
        "n_ctx": 2048, "n_threads": 1, "seed": 7, "kv_cache_type": "f32", "flash_attn": False,
        "decoder_noise": "off", "decode_batch": 4, **extra,
    }  # fmt: skip


@pytest.fixture(scope="module")
def orpheus_server(models: dict[str, Path]) -> Iterator[LiveServer]:
    with LiveServer(engines=["orpheus"], orpheus=orpheus_settings(models)) as live:
        yield live


def speech(server: LiveServer, text: str, voice: str = "tara") -> np.ndarray:
    response = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "orpheus", "voice": voice, "input": text, "response_format": "pcm"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, "<i2").astype(np.float32) / 32768


def generated_tokens(server: LiveServer) -> int:
    return server.gateway.engines.get("orpheus").generator.stats.tokens_generated


def test_rest_audio_is_exactly_the_generated_frames(orpheus_server: LiveServer) -> None:
    before = generated_tokens(orpheus_server)
    audio = speech(orpheus_server, "Hello there.")
    tokens = generated_tokens(orpheus_server) - before
    assert tokens == MAX_TOKENS
    assert audio.size == tokens // 7 * 2048, "no frame dropped or duplicated"
    assert np.abs(audio).max() > 0.001, "the decoder produced signal"


SAME, DIFFERENT = 40.0, 35.0
"""SNR in dB against a reference. A random SNAC's output barely depends on its codes: different codes
still score ~29 dB. The same codes decoded in other windows (timing picks the window sizes) differ
only by the seam error: ~50 dB; the same windows: identical."""


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = np.sum((reference - test) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(noise, 1e-20)))


def test_same_text_same_audio_with_a_seed(orpheus_server: LiveServer) -> None:
    first = speech(orpheus_server, "Say it again <laugh> please.")
    second = speech(orpheus_server, "Say it again <laugh> please.")
    other = speech(orpheus_server, "Something else entirely.")
    # The same tokens; decode windows follow timing, so seams may differ by the decoder's seam error.
    assert first.size == second.size and snr_db(first, second) > SAME
    assert snr_db(first, other[: first.size]) < DIFFERENT


def test_concurrent_sessions_get_exactly_their_own_audio(orpheus_server: LiveServer) -> None:
    texts = ["First caller here.", "Second caller now.", "Third one speaking.", "And a fourth."]
    alone = [speech(orpheus_server, t) for t in texts]
    batcher = orpheus_server.gateway.engines.get("orpheus").batcher
    batches_before, windows_before = batcher.stats.batches, batcher.stats.windows

    async def together() -> list[np.ndarray]:
        async with httpx.AsyncClient(base_url=orpheus_server.url, timeout=60) as http:

            async def one(text: str) -> np.ndarray:
                r = await http.post("/v1/audio/speech", json={"model": "orpheus", "voice": "tara", "input": text,
                                                              "response_format": "pcm"})  # fmt: skip
                assert r.status_code == 200
                return np.frombuffer(r.content, "<i2").astype(np.float32) / 32768

            return list(await asyncio.gather(*(one(t) for t in texts)))

    concurrent = asyncio.run(together())
    windows = batcher.stats.windows - windows_before
    assert windows > batcher.stats.batches - batches_before, "windows of different sessions shared a decode"
    for i, audio in enumerate(concurrent):
        assert audio.size == alone[i].size == MAX_TOKENS // 7 * 2048
        # Same tokens (seeded, isolated sequences); window sizes may differ with timing, so seams
        # may differ by the decoder's tiny seam error, never by another session's audio.
        assert snr_db(alone[i], audio) > SAME, f"session {i} differs from its solo run"
        for j in range(len(texts)):
            if j != i:
                assert snr_db(alone[j], audio) < DIFFERENT, f"session {i} sounds like session {j}"


def test_realtime_session_speaks_whole_frames_and_cancel_frees_the_sequence(
    orpheus_server: LiveServer,
) -> None:
    engine = orpheus_server.gateway.engines.get("orpheus")

    async def scenario() -> None:
        async with session(orpheus_server, query={"engine": "orpheus", "voice": "leo"}) as client:
            done = await client.speak("One short line.")
            assert done["audio_ms"] == pytest.approx(MAX_TOKENS // 7 * 2048 / 24, abs=0.1)
            received = np.frombuffer(client.audio(), "<i2")
            samples = MAX_TOKENS // 7 * 2048
            # Whole 20 ms frames on the wire: the last one is padded with silence.
            assert received.size == -(-samples // 480) * 480 and not received[samples:].any()

            await client.update(engine="orpheus")
            cancelled_before = engine.generator.stats.sequences_cancelled
            await client.append("A much longer story that would go on. " * 3, "long")
            await client.send("text.flush", context_id="long")
            await client.expect("segment.started", context_id="long")
            assert await eventually(lambda: engine.generator.active_sequences > 0, 10)
            await client.send("context.cancel", context_id="long")
            await client.expect("speech.interrupted", context_id="long")
            assert await eventually(lambda: engine.generator.active_sequences == 0 and engine.load == 0, 10)
            assert engine.generator.stats.sequences_cancelled > cancelled_before
            again = await client.speak("Still works.")
            assert again["audio_ms"] > 0

    run(scenario())


def test_unknown_voice_is_a_clear_error(orpheus_server: LiveServer) -> None:
    response = httpx.post(
        f"{orpheus_server.url}/v1/audio/speech",
        json={"model": "orpheus", "voice": "nobody", "input": "Hi.", "response_format": "pcm"},
        timeout=30,
    )
    assert response.status_code in (400, 404)
    assert response.json()["error"]["param"] == "voice"


def test_a_speed_orpheus_cannot_honour_is_refused_not_ignored(orpheus_server: LiveServer) -> None:
    """Orpheus declares no speed capability: speed 1 is served, any other speed is a clear error."""
    body = {"model": "orpheus", "voice": "tara", "input": "Hi.", "response_format": "pcm"}
    response = httpx.post(f"{orpheus_server.url}/v1/audio/speech", json={**body, "speed": 1.5}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "speed" and error["code"] == "unsupported_speed"
    assert "engine 'orpheus' cannot change speed" in error["message"]
    assert speech(orpheus_server, "Hi.").size > 0  # speed 1 (the default) is served as before
    ok = httpx.post(f"{orpheus_server.url}/v1/audio/speech", json={**body, "speed": 1.0}, timeout=60)
    assert ok.status_code == 200 and len(ok.content) > 0

    async def scenario() -> None:
        async with session(orpheus_server, query={"engine": "orpheus"}) as client:
            await client.send("session.update", speed=2.0)
            error = await client.expect("error")
            assert error["code"] == "invalid_config" and "cannot change speed" in error["message"]
            assert client.events("session.updated") == []

    run(scenario())


def test_remote_backend_against_a_real_completions_server(models: dict[str, Path], tmp_path: Path) -> None:
    with llama_server(models["framed"], tmp_path / "llama.log") as base:
        settings = orpheus_settings(models, backend="remote", remote_url=base, model=None)
        with LiveServer(engines=["orpheus"], orpheus=settings) as live:
            audio = speech(live, "Hello from far away.")
            engine = live.gateway.engines.get("orpheus")
            stats = engine.generator.stats
            assert audio.size > 0 and audio.size % 2048 == 0, "whole frames only"
            assert audio.size == (stats.tokens_generated // 7) * 2048
            assert wait_for(lambda: engine.generator.active_sequences == 0, 5)


def test_missing_model_paths_fail_at_start_with_a_clear_message() -> None:
    from realtime.engines.base import EngineError
    from realtime.engines.orpheus.engine import OrpheusEngine
    from realtime.engines.orpheus.settings import OrpheusSettings

    with pytest.raises(EngineError, match="snac_model"):
        OrpheusEngine(OrpheusSettings(model=Path("x.gguf")))
    with pytest.raises(EngineError, match="orpheus.model"):
        OrpheusEngine(OrpheusSettings(snac_model=Path("snac")))
    with pytest.raises(EngineError, match="remote_url"):
        OrpheusEngine(OrpheusSettings(backend="remote", snac_model=Path("snac")))
