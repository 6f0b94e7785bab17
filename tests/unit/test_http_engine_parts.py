"""The `http` engine's parts that need no server: PCM reads split anywhere, voice lists in the shapes
servers publish, balancing by outstanding requests, settings, and instances in the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from realtime.audio.pcm import float_to_int16
from realtime.control.settings import load_settings
from realtime.engines.base import SynthesisJob, Voice
from realtime.engines.http.engine import HttpEngine
from realtime.engines.http.pcm import Pcm16Stream
from realtime.engines.http.settings import HttpSettings, HttpUpstreamSettings
from realtime.engines.http.upstream import Balancer, Upstream, _message
from realtime.engines.http.voices import parse_voices
from realtime.engines.registry import EngineRegistry, build_engine, instances


def test_pcm_reads_split_inside_samples_lose_nothing() -> None:
    samples = np.sin(np.linspace(0, 40, 1001)).astype(np.float32) * 0.5
    data = float_to_int16(samples).tobytes()
    stream = Pcm16Stream()
    out = []
    for size in (1, 3, 2, 7, 100, 1, 1, 5000):  # odd sizes carry a byte into the next read
        piece, data = data[:size], data[size:]
        out.append(stream.feed(piece))
    out.append(stream.feed(data))
    decoded = np.concatenate(out)
    assert decoded.dtype == np.float32 and decoded.size == samples.size
    assert np.allclose(decoded, samples, atol=1 / 32767)
    assert stream.pending_bytes == 0
    assert stream.feed(b"\x01").size == 0 and stream.pending_bytes == 1


@pytest.mark.parametrize(
    ("payload", "ids"),
    [
        ({"voices": ["af_heart", "am_adam"]}, ["af_heart", "am_adam"]),  # Kokoro-FastAPI before 0.3
        ({"voices": [{"id": "af_heart", "name": "af_heart"}]}, ["af_heart"]),  # Kokoro-FastAPI
        (  # this gateway: its engine's voices, then OpenAI names as aliases (left out)
            {
                "voices": [
                    {"id": "low", "name": "Low tone", "engine": "tone", "language": None},
                    {"id": "alloy", "name": "alloy", "engine": "tone", "alias_of": "low"},
                ]
            },
            ["low"],
        ),  # fmt: skip
        ([{"voice_id": "v1"}, {"name": "v2"}, "v3", "v3", 7, {}], ["v1", "v2", "v3"]),
        ({"data": [{"id": "x"}]}, ["x"]),
        ({"detail": "Not Found"}, []),
        (None, []),
    ],
)
def test_voice_lists_in_every_published_shape(payload: object, ids: list[str]) -> None:
    assert [v.id for v in parse_voices(payload)] == ids


def test_a_voice_keeps_its_name_and_language() -> None:
    payload = {"voices": [{"id": "en_US-joe", "name": "Joe", "language": "en_US"}]}
    assert parse_voices(payload) == [Voice("en_US-joe", "Joe", "en_US")]


def test_error_messages_come_out_of_every_error_shape() -> None:
    def message(payload: object) -> str:
        return _message(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload)

    assert message({"error": {"message": "bad voice", "type": "invalid_request_error"}}) == "bad voice"
    assert message({"detail": {"error": "validation_error", "message": "Voice 'x' not found"}}) == (
        "Voice 'x' not found"
    )
    assert message({"detail": "Not Found"}) == "Not Found"
    assert message(b"Internal Server Error") == "Internal Server Error"
    assert message(b"") == ""


class _Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_balancing_goes_to_the_least_outstanding_url_and_around_equals() -> None:
    config = HttpUpstreamSettings(urls=["http://a/v1", "http://b/v1", "http://c/v1"], down_s=5)
    clock = _Clock()
    a, b, c = (Upstream(url, config, clock=clock) for url in config.urls)
    balancer = Balancer([a, b, c])
    assert {balancer.pick().url for _ in range(6)} == {a.url, b.url, c.url}, "equals take turns"
    a.outstanding, b.outstanding, c.outstanding = 2, 0, 1
    assert balancer.pick() is b
    assert balancer.pick(exclude=[b]) is c
    b.mark_down()  # refused a connection: skipped while another URL can take the request
    assert balancer.pick() is c
    clock.now += 5
    assert balancer.pick() is b, "back in rotation after down_s"
    a.mark_down(), b.mark_down(), c.mark_down()
    assert balancer.pick() is b, "all down: still the least busy (one may be back)"
    assert balancer.pick(exclude=[a, b, c]) is None


def test_settings_take_one_url_or_several_and_refuse_bad_names() -> None:
    assert HttpUpstreamSettings(urls="http://host:8880/v1/").urls == ["http://host:8880/v1"]
    with pytest.raises(ValidationError, match="must start with http"):
        HttpUpstreamSettings(urls=["host:8880"])
    with pytest.raises(ValidationError, match="lower-case"):
        HttpSettings(instances={"Kokoro": {}})
    with pytest.raises(ValidationError, match="OpenAI model id"):
        HttpSettings(instances={"tts-1": {}})


def test_instances_are_engines_under_their_own_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'engines = ["kokoro-remote", "http"]\n[http]\nurls = ["http://gw:8000/v1"]\n'
        '[http.instances.kokoro-remote]\nurls = ["http://gpu1:8880/v1", "http://gpu2:8880/v1"]\nmodel = "kokoro"\n'
        'voices = ["af_heart"]\n'
    )
    monkeypatch.setenv("REALTIME_CONFIG", str(config))
    monkeypatch.setenv("REALTIME_HTTP__INSTANCES__XTTS__URLS", '["http://xtts:8020/v1"]')
    settings = load_settings()
    assert sorted(instances(settings)) == ["kokoro-remote", "xtts"]
    kokoro = build_engine("kokoro-remote", settings)
    assert isinstance(kokoro, HttpEngine) and kokoro.info.name == "kokoro-remote"
    assert [u.url for u in kokoro.upstreams] == ["http://gpu1:8880/v1", "http://gpu2:8880/v1"]
    assert kokoro.info.default_voice == "af_heart" and kokoro.info.capabilities.device == "remote"
    assert kokoro.gate.slots == 2 * settings.http.instances["kokoro-remote"].max_concurrency
    assert build_engine("http", settings).info.name == "http"
    with pytest.raises(
        ValueError,
        match="unknown engine 'nope'; known: http, kokoro, kokoro-remote, orpheus, piper, tone, xtts",
    ):
        build_engine("nope", settings)


def test_an_instance_may_not_take_an_engines_name() -> None:
    for name in ("piper", "kokoro"):  # `kokoro` is the embedded engine: a remote Kokoro needs another name
        settings = load_settings(http={"instances": {name: {"urls": ["http://x/v1"]}}})
        with pytest.raises(ValueError, match=f"engine name '{name}' in http.instances is already taken"):
            build_engine(name, settings)


def test_an_engine_without_url_says_where_to_set_one() -> None:
    with pytest.raises(Exception, match=r"http\.instances\.kokoro-remote\.urls"):
        build_engine("kokoro-remote", load_settings(http={"instances": {"kokoro-remote": {}}}))


def test_the_request_body_is_openai_shaped() -> None:
    engine = HttpEngine(
        HttpUpstreamSettings(urls=["http://x/v1"], model="kokoro", voices=["af_heart"],
                             extra_body={"lang_code": "a", "response_format": None}),
    )  # fmt: skip
    assert engine.request_body(SynthesisJob("Hi.", "af_heart")) == {
        "model": "kokoro", "input": "Hi.", "voice": "af_heart", "lang_code": "a",
    }  # fmt: skip
    assert engine.request_body(SynthesisJob("Hi.", "af_heart", speed=1.5))["speed"] == 1.5


def test_the_registry_manages_instances_under_their_names() -> None:
    """Loaded at start, reloaded with new settings, or added by `PUT /v1/engines/{name}`: an
    instance keeps its own name (its model id, metrics label and error messages)."""
    settings = load_settings(
        engines=["piper", "kokoro-remote"],
        http={"instances": {"kokoro-remote": {"urls": ["http://gpu1:8880/v1"]}}},
    )
    registry = EngineRegistry.from_settings(settings)
    entry = registry.entry("kokoro-remote")
    assert entry is not None and entry.kind == "http" and entry.engine.info.name == "kokoro-remote"
    config = HttpSettings(urls=["http://gpu2:8880/v1"])
    added = registry.configure("xtts", "http", config)
    assert added.kind == "http" and added.engine.info.name == "xtts"
    assert registry.configure("http", "http", config).engine.info.name == "http"
