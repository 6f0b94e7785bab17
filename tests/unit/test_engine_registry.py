"""The engine registry's state machine: background loads, draining unloads, new settings loaded beside
the serving instance, fallback chains and health; and hot settings (`control/hot_config.py`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from realtime.control.config_watch import ConfigWatcher
from realtime.control.hot_config import ConfigPatchError, apply_patch, hot_changes, hot_view, public_view
from realtime.control.settings import load_settings
from realtime.engines.base import EngineError
from realtime.engines.managed import EngineState
from realtime.engines.registry import EngineBusy, EngineRegistry
from realtime.engines.tone.engine import ToneEngine
from realtime.engines.tone.settings import ToneSettings
from realtime.gateway import Gateway


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


async def settled(reg: EngineRegistry) -> None:
    await reg.wait_idle()


def test_loads_run_in_the_background_and_unloads_drain_before_stopping() -> None:
    async def main() -> None:
        reg = EngineRegistry.from_settings(load_settings(engines=["tone"], tone={"load_delay_s": 0.05}))
        assert reg.entry("tone").state is EngineState.UNLOADED and not reg.ready  # type: ignore[union-attr]
        entry = reg.load("tone")
        assert entry.state is EngineState.LOADING and not reg.usable("tone")
        await asyncio.sleep(0)  # the event loop is free while it loads
        await settled(reg)
        assert entry.state is EngineState.READY and reg.usable("tone") and reg.ready
        engine = entry.engine
        lease = reg.lease("tone")
        assert lease is not None and entry.describe(0.0)["contexts"] == 1
        reg.unload("tone")
        assert entry.state is EngineState.DRAINING and not reg.usable("tone")
        with pytest.raises(EngineBusy, match="unloading"):
            reg.load("tone")
        await asyncio.sleep(0.05)
        assert entry.state is EngineState.DRAINING and engine.ready, "a running context keeps it"
        lease.release()
        lease.release()  # idempotent
        await settled(reg)
        assert entry.state is EngineState.UNLOADED and not engine.ready and "tone" not in reg.engines
        reg.load("tone")  # loads a fresh instance (the old one's workers are gone)
        await settled(reg)
        assert entry.state is EngineState.READY and entry.engine is not engine and entry.engine.ready
        await reg.stop()

    run(main())


def test_a_drain_gives_up_after_drain_timeout_s() -> None:
    async def main() -> None:
        reg = EngineRegistry.from_settings(load_settings(engines=["tone"], drain_timeout_s=0.05))
        await reg.start()
        lease = reg.lease("tone")
        reg.unload("tone")
        await settled(reg)
        assert reg.entry("tone").state is EngineState.UNLOADED  # type: ignore[union-attr]
        assert lease is not None
        lease.release()

    run(main())


class Broken(ToneEngine):
    async def start(self) -> None:
        raise EngineError("model file not found")


def test_a_failed_load_is_reported_and_a_fallback_serves() -> None:
    async def main() -> None:
        reg = EngineRegistry(
            {"broken": Broken(ToneSettings()), "tone": ToneEngine(ToneSettings())}, "broken",
            fallbacks={"broken": ["tone"]},
        )  # fmt: skip
        await reg.start()
        broken = reg.entry("broken")
        assert broken is not None and broken.state is EngineState.FAILED
        assert broken.error == "EngineError: model file not found" and reg.load_errors == {
            "broken": broken.error
        }
        assert reg.choose("broken") == "tone" and reg.ready, "its fallback serves: the server is ready"
        reg.fallbacks = {}
        assert reg.choose("broken") is None and not reg.ready
        with pytest.raises(EngineBusy, match="built outside the registry"):
            reg.load("broken")
        await reg.stop()

    run(main())


def test_chains_choose_the_first_usable_engine_that_can_honour_the_request() -> None:
    async def main() -> None:
        reg = EngineRegistry(
            {"a": ToneEngine(ToneSettings()), "b": ToneEngine(ToneSettings()), "c": ToneEngine(ToneSettings())},
            "a", fallbacks={"a": ["b"], "b": ["c", "a"]}, retry_after_s=10.0, clock=lambda: now,
        )  # fmt: skip
        now = 0.0
        await reg.start()
        assert reg.chain("a") == ["b", "c"] and reg.chain("c") == []
        assert reg.choose("a") == "a"
        reg.failed("a", "stall")
        assert reg.choose("a") == "b" and reg.entry("a").health.degraded  # type: ignore[union-attr]
        assert reg.choose("a", skip={"b"}) == "c"
        now = 10.0
        assert reg.choose("a") == "a", "retried once retry_after_s has passed"
        reg.succeeded("a", started_at=10.0)
        assert not reg.entry("a").health.degraded  # type: ignore[union-attr]
        await reg.stop()

    run(main())


def test_new_settings_load_beside_the_serving_instance_and_take_over_when_ready() -> None:
    async def main() -> None:
        reg = EngineRegistry.from_settings(load_settings(engines=["tone"]))
        await reg.start()
        entry = reg.entry("tone")
        assert entry is not None
        old = entry.engine
        lease = reg.lease("tone")
        reg.configure("tone", "tone", ToneSettings(speed=7.0, load_delay_s=0.05))
        assert entry.reloading and entry.engine is old and reg.usable("tone"), "the old one serves meanwhile"
        await asyncio.sleep(0.1)
        assert not entry.reloading and entry.engine is not old and entry.engine.ready
        assert entry.describe(0.0)["contexts"] == 1 and old.ready, "the old instance drains for its context"
        assert lease is not None
        lease.release()
        await settled(reg)
        assert not old.ready and entry.retiring == []
        assert entry.config is not None and entry.config.speed == 7.0  # type: ignore[attr-defined]
        await reg.stop()

    run(main())


def test_an_unload_during_a_reload_stops_both_instances() -> None:
    async def main() -> None:
        reg = EngineRegistry.from_settings(load_settings(engines=["tone"]))
        await reg.start()
        entry = reg.entry("tone")
        assert entry is not None
        old = entry.engine
        reg.configure("tone", "tone", ToneSettings(load_delay_s=0.2))
        await asyncio.sleep(0.05)
        reg.unload("tone")
        await settled(reg)
        assert entry.state is EngineState.UNLOADED and not entry.reloading
        assert entry.engine is old and not old.ready, "the new instance never took over"

    run(main())


def test_an_engine_is_added_unloaded_and_bad_settings_are_refused() -> None:
    async def main() -> None:
        reg = EngineRegistry.from_settings(load_settings(engines=["tone"]))
        entry = reg.configure("tone-fast", "tone", ToneSettings(speed=100.0))
        assert entry.state is EngineState.UNLOADED and "tone-fast" not in reg.engines
        reg.load("tone-fast")
        await settled(reg)
        assert reg.usable("tone-fast")
        with pytest.raises(EngineError, match="voices_dir"):
            from realtime.engines.piper.settings import PiperSettings

            reg.configure("piper-2", "piper", PiperSettings(voices_dir="/nonexistent"))
        await reg.stop()

    run(main())


def test_hot_settings_are_validated_and_only_hot_fields_change() -> None:
    settings = load_settings(engines=["piper", "tone"], api_keys=["k"], admin_keys=["a"])
    new = apply_patch(
        settings, {"default_engine": "tone", "planner": {"first_max_chars": 20}, "voice_map": {"alloy": "mid"}},
        ["piper", "tone"],
    )  # fmt: skip
    assert new.default_engine == "tone" and new.engines == ["tone", "piper"]
    assert new.planner.first_max_chars == 20 and new.planner.max_chars == settings.planner.max_chars
    assert settings.planner.first_max_chars == 30, "the old settings object is untouched"
    with pytest.raises(ConfigPatchError, match="cannot change while the server runs") as cold:
        apply_patch(settings, {"port": 9000}, ["piper"])
    assert cold.value.field == "port"
    with pytest.raises(ConfigPatchError, match="first_max_chars") as bad:
        apply_patch(settings, {"planner": {"first_max_chars": 0}}, ["piper"])
    assert bad.value.field == "planner.first_max_chars"
    with pytest.raises(ConfigPatchError, match="unknown engine"):
        apply_patch(settings, {"failover": {"fallbacks": {"piper": ["nope"]}}}, ["piper", "tone"])
    with pytest.raises(ConfigPatchError, match="own fallback"):
        apply_patch(settings, {"failover": {"fallbacks": {"piper": ["piper"]}}}, ["piper", "tone"])
    with pytest.raises(ConfigPatchError, match="default_engine"):
        apply_patch(settings, {"default_engine": "nope"}, ["piper", "tone"])
    view = public_view(settings)
    assert view["api_keys"] == "[1 configured]" and "k" not in str(view["admin_keys"])
    assert hot_view(new)["default_engine"] == "tone"
    patch, cold_fields = hot_changes(settings, new.model_copy(update={"port": 9000}))
    assert set(patch) == {"default_engine", "planner", "voice_map"} and cold_fields == ["port"]


def test_a_watched_settings_file_applies_its_hot_changes_on_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "realtime.toml"
    config.write_text('engines = ["piper", "tone"]\n[planner]\nfirst_max_chars = 30\n')
    monkeypatch.setenv("REALTIME_CONFIG", str(config))
    gateway = Gateway(load_settings(watch_config=True))
    watcher = ConfigWatcher(config, gateway.patch_settings)
    assert not watcher.check(), "nothing saved yet"
    config.write_text('engines = ["tone", "piper"]\nport = 9000\n[planner]\nfirst_max_chars = 18\n')
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert watcher.check()
    assert gateway.settings.planner.first_max_chars == 18 and gateway.settings.default_engine == "tone"
    assert gateway.engines.default == "tone" and gateway.settings.port == 8000, (
        "a cold field waits for a restart"
    )
    config.write_text("engines = [\n")  # half-written
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert not watcher.check() and gateway.settings.planner.first_max_chars == 18
