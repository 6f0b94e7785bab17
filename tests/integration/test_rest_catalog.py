"""Models, voices, health, readiness and metrics endpoints."""

from __future__ import annotations

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.server import LiveServer


def test_models(server: LiveServer) -> None:
    c = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    ids = [m.id for m in c.models.list().data]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper", "tone"} <= set(ids)
    model = c.models.retrieve("tts-1")
    assert model.id == "tts-1" and model.object == "model"
    try:
        c.models.retrieve("no-such-model")
        raise AssertionError("expected 404")
    except openai.NotFoundError as exc:
        assert exc.body["code"] == "model_not_found"


def test_voices(server: LiveServer) -> None:
    voices = httpx.get(f"{server.url}/v1/audio/voices").json()["voices"]
    ids = {v["id"] for v in voices}
    assert "en_US-joe-medium" in ids and "alloy" in ids
    assert all(set(v) >= {"id", "name"} for v in voices)
    tone = httpx.get(f"{server.url}/v1/audio/voices", params={"model": "tone"}).json()["voices"]
    assert {v["id"] for v in tone} == {"low", "mid", "high"}
    assert httpx.get(f"{server.url}/v1/audio/voices", params={"model": "x"}).status_code == 404


def test_health_ready_metrics(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["engines"] == {"piper": True, "tone": True}
    httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "Count me.", "response_format": "wav"},
    )
    httpx.post(f"{server.url}/v1/audio/speech", json={"model": "tts-1"})
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "realtime_requests_total",
        "realtime_errors_total",
        "realtime_time_to_first_audio_seconds_bucket",
        "realtime_real_time_factor_bucket",
        "realtime_active_sessions",
        "realtime_engine_queue_depth",
        "realtime_underruns_total",
        'realtime_engine_jobs_total{engine="piper",outcome="completed"}',
    ):
        assert name in text, name
    count = [
        line for line in text.splitlines() if line.startswith("realtime_time_to_first_audio_seconds_count")
    ]
    assert count and any(float(line.split()[-1]) >= 1 for line in count)
    assert 'realtime_errors_total{code="missing_required_parameter"}' in text
    piper = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("engine") == "piper"
    }
    # The worker thread's CPU time is counted: audio per CPU second is the engine's speed (Piper is
    # several times faster than real time on any machine this runs on).
    assert piper["realtime_engine_cpu_seconds_total"] > 0
    assert piper["realtime_engine_audio_seconds_total"] / piper["realtime_engine_cpu_seconds_total"] > 1


def test_orpheus_fastapi_speak_answers_in_its_shape_and_serves_the_file(server: LiveServer) -> None:
    """Orpheus-FastAPI's legacy `POST /speak` (`{"text", "voice"}` -> JSON naming a WAV under /outputs/)."""
    import io
    import wave

    r = httpx.post(
        f"{server.url}/speak", json={"text": "Hello from an old script.", "voice": "mid"}, timeout=30
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["voice"] == "mid" and body["engine"] == "tone"
    assert body["output_file"].startswith("outputs/mid_") and body["output_file"].endswith(".wav")
    assert isinstance(body["generation_time"], float) and body["degraded"] is False
    wav = httpx.get(f"{server.url}/{body['output_file']}")
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as w:
        assert w.getframerate() == 24000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        assert 1.0 < w.getnframes() / 24000 < 2.5  # tone: 60 ms per character
    default = httpx.post(f"{server.url}/speak", json={"text": "Unknown voice.", "voice": "tara"}, timeout=30)
    assert default.status_code == 200 and default.json()["voice"] == "en_US-joe-medium", (
        "as Orpheus-FastAPI does"
    )
    missing = httpx.post(f"{server.url}/speak", json={"voice": "tara"})
    assert missing.status_code == 400 and missing.json() == {"error": "Missing 'text'"}
    assert httpx.get(f"{server.url}/outputs/nope.wav").status_code == 404
