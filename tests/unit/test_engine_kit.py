"""The engine kit's rules: requests checked against capabilities, engine settings aggregated from the
registry without importing engines, and engines importing only downward."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.control.settings import CoreSettings, Settings, load_settings
from realtime.engines.base import (
    EngineCapabilities,
    EngineInfo,
    UnknownVoiceError,
    UnsupportedSpeedError,
    Voice,
)
from realtime.engines.registry import ENGINES, build_engine

ENGINES_DIR = Path(__file__).resolve().parents[2] / "realtime" / "engines"


def info(**capabilities: object) -> EngineInfo:
    return EngineInfo(
        name="x", sample_rate=16000, voices=(Voice("a", "A"),), default_voice="a",
        capabilities=EngineCapabilities(**capabilities),  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_request_is_checked_against_voices_and_capabilities() -> None:
    plain, fast = info(), info(speed=True)
    plain.check("a")
    plain.check("a", 1.0)
    fast.check("a", 2.5)
    with pytest.raises(UnknownVoiceError, match="unknown x voice 'b'") as voice:
        fast.check("b")
    assert voice.value.param == "voice"
    with pytest.raises(
        UnsupportedSpeedError, match=r"engine 'x' cannot change speed \(asked for 1.5\)"
    ) as speed:
        plain.check("a", 1.5)
    assert speed.value.param == "speed"


def test_every_registered_engine_has_its_settings_section() -> None:
    for name, spec in ENGINES.items():
        assert name not in CoreSettings.model_fields
        assert Settings.model_fields[name].annotation is spec.settings_model()
    settings = load_settings()
    assert all(isinstance(getattr(settings, n), ENGINES[n].settings_model()) for n in ENGINES)


def test_engine_settings_read_the_same_names_as_ever(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "realtime.toml"
    config.write_text('[piper]\nmax_phonemes_per_run = 99\n[orpheus]\nvoices = ["a", "b"]\n')
    monkeypatch.setenv("REALTIME_CONFIG", str(config))
    monkeypatch.setenv("REALTIME_PIPER__WORKERS", "3")
    monkeypatch.setenv("REALTIME_TONE__SPEED", "7.5")
    settings = load_settings()
    assert settings.piper.workers == 3 and settings.piper.max_phonemes_per_run == 99
    assert settings.tone.speed == 7.5 and settings.orpheus.voices == ["a", "b"]


def test_loading_settings_imports_no_engine() -> None:
    code = (
        "import sys, realtime.control.settings as s; s.load_settings(); "
        "print(sorted(m for m in sys.modules if m.endswith('.engine') or m.split('.')[0] in "
        "('torch', 'onnxruntime', 'llama_cpp', 'piper', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_an_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown engine 'nope'; known: http, kokoro, orpheus, piper, tone"):
        build_engine("nope", load_settings())


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (annotations only, never imported)."""
    nodes: list[ast.AST] = []
    for child in ast.iter_child_nodes(tree):
        if (
            isinstance(child, ast.If)
            and isinstance(child.test, ast.Name)
            and child.test.id == "TYPE_CHECKING"
        ):
            continue
        nodes += [child, *_runtime_nodes(child)]
    return nodes


def _imports(path: Path) -> list[str]:
    """Absolute names of what `path` imports at run time (relative ones resolved against its package)."""
    package = ["realtime", *path.relative_to(ENGINES_DIR.parent).parent.parts]
    names = []
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.append(".".join([*base, *(node.module.split(".") if node.module else [])]))
    return names


def test_engines_import_only_downward() -> None:
    """Engines sit below sessions, transports and the control plane: they never import them."""
    above = ("realtime.control", "realtime.session", "realtime.transport", "realtime.gateway", "realtime.app")
    offenders = {
        str(path.relative_to(ENGINES_DIR)): name
        for path in ENGINES_DIR.rglob("*.py")
        for name in _imports(path)
        if name.startswith(above)
    }
    assert not offenders, offenders
