"""Settings from TOML and the environment, extra Piper voices from a directory, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from realtime.control.settings import load_settings
from realtime.engines.piper.engine import embedded_voice
from tests.audio_check import decode
from tests.server import LiveServer


def test_toml_file_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('port = 9001\nengines = ["tone"]\napi_keys = ["k1"]\n[planner]\nmax_chars = 150\n')
    monkeypatch.setenv("REALTIME_CONFIG", str(config))
    s = load_settings()
    assert (s.port, s.engines, s.api_keys, s.planner.max_chars) == (9001, ["tone"], ["k1"], 150)
    monkeypatch.setenv("REALTIME_PORT", "9002")
    monkeypatch.setenv("REALTIME_PLANNER__MAX_CHARS", "120")
    s = load_settings()
    assert (s.port, s.planner.max_chars) == (9002, 120)
    assert load_settings(port=9003).port == 9003


def test_bad_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTIME_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        load_settings()
    monkeypatch.delenv("REALTIME_CONFIG")
    with pytest.raises(ValueError):
        load_settings(engines=[])
    with pytest.raises(ValueError):
        load_settings(log_format="xml")
    with pytest.raises(ValueError, match="unacked_timeout_s"):
        load_settings(send_timeout_s=30, unacked_timeout_s=30)  # the kernel would cut before the 1008
    assert load_settings(send_timeout_s=60, unacked_timeout_s=0).unacked_timeout_s == 0  # off is fine


def test_voices_directory_adds_voices(tmp_path: Path) -> None:
    joe = embedded_voice()
    (tmp_path / "en_US-second-medium.onnx").symlink_to(joe.model)
    (tmp_path / "en_US-second-medium.onnx.json").symlink_to(joe.config)
    (tmp_path / "orphan.onnx").symlink_to(joe.model)  # no config: skipped with a warning
    with LiveServer(engines=["piper"], piper={"voices_dir": str(tmp_path), "workers": 1}) as live:
        voices = {v["id"] for v in httpx.get(f"{live.url}/v1/audio/voices").json()["voices"]}
        assert {"en_US-joe-medium", "en_US-second-medium"} <= voices and "orphan" not in voices
        r = httpx.post(
            f"{live.url}/v1/audio/speech",
            json={
                "model": "piper",
                "voice": "en_US-second-medium",
                "input": "A second voice.",
                "response_format": "wav",
            },
        )
        assert r.status_code == 200
        assert decode(r.content, "wav").rms > 0.02


def test_cli_say_writes_real_audio(tmp_path: Path) -> None:
    out = tmp_path / "hello.ogg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALTIME_")}
    result = subprocess.run(
        [sys.executable, "-m", "realtime", "say", "Hello from the command line.", "-o", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    audio = decode(out.read_bytes(), "opus")
    assert audio.duration_s > 1.0 and audio.rms > 0.02


def test_cli_rejects_bad_speed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "realtime", "say", "x", "-o", str(tmp_path / "x.wav"), "--speed", "9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "speed" in result.stderr


def test_cli_say_refuses_text_that_is_not_unicode_or_has_nothing_to_speak(tmp_path: Path) -> None:
    cases = (
        ("bad \udc80 byte", "surrogate"),
        ("...!?", "nothing to speak"),
        ("\N{GRINNING FACE}", "nothing this voice"),
    )
    for text, message in cases:
        result = subprocess.run(
            [sys.executable, "-m", "realtime", "say", text, "-o", str(tmp_path / "x.wav")],
            capture_output=True, text=True, timeout=60, errors="replace",
        )  # fmt: skip
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "x.wav").exists()
