"""Every engine the server can run: the one line a new engine adds, and the registry of loaded ones.

A spec names an engine's package; by convention the package holds `engine.py`
(the engine class, built from its settings model) and `settings.py` (that
pydantic model, pydantic only). The settings root imports the settings models
to aggregate one section per engine (`[piper]`, `REALTIME_ORPHEUS__...`); an
engine's own code is imported only when `engines` names it, and nothing loads a
model at import time. Nothing else branches on an engine's name or type.

A spec with `instances` is an engine kind that can also run under names the user
chooses, one engine per entry of that field of its settings (the `http` engine:
one upstream server per name). `build_engine` resolves those names too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .health import EngineHealth
from .managed import EngineState, Instance, Lease, ManagedEngine
from .memory import release_freed_memory

if TYPE_CHECKING:
    from ..control.settings import Settings
    from .base import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives: `{package}.engine:{engine}` and `{package}.settings:{settings}`."""

    package: str
    engine: str
    settings: str
    instances: str | None = None
    """The field of the engine's settings that maps names of the user's choosing to settings of more
    engines of its kind (`http`'s `instances`), each built with `name=` set; None: it runs once, under
    its registered name."""

    def settings_model(self) -> type[BaseModel]:
        model = getattr(importlib.import_module(f"{self.package}.settings"), self.settings)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.package}.settings.{self.settings} is not a pydantic model")
        return model

    def build(self, config: Any, name: str | None = None) -> Engine:
        """Construct the engine (cheap: loading happens in its `start`); `name`: an instance's."""
        engine = getattr(importlib.import_module(f"{self.package}.engine"), self.engine)
        return engine(config) if name is None else engine(config, name=name)


ENGINES: dict[str, EngineSpec] = {
    "piper": EngineSpec("realtime.engines.piper", engine="PiperEngine", settings="PiperSettings"),
    "tone": EngineSpec("realtime.engines.tone", engine="ToneEngine", settings="ToneSettings"),
    "orpheus": EngineSpec("realtime.engines.orpheus", engine="OrpheusEngine", settings="OrpheusSettings"),
    "kokoro": EngineSpec("realtime.engines.kokoro", engine="KokoroEngine", settings="KokoroSettings"),
    "http": EngineSpec(
        "realtime.engines.http", engine="HttpEngine", settings="HttpSettings", instances="instances"
    ),
}
"""Name (as in `engines`, the `model` field, and the settings section) -> spec."""


def spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def instances(settings: Settings) -> dict[str, tuple[EngineSpec, Any]]:
    """Engines configured under names of the user's choosing: name -> (its kind's spec, its settings).
    A name taken twice (by a registered engine or another instance) is refused."""
    found: dict[str, tuple[EngineSpec, Any]] = {}
    for kind, kind_spec in ENGINES.items():
        if kind_spec.instances is None:
            continue
        for name, config in getattr(getattr(settings, kind), kind_spec.instances).items():
            if name in ENGINES or name in found:
                raise ValueError(f"engine name {name!r} in {kind}.{kind_spec.instances} is already taken")
            found[name] = (kind_spec, config)
    return found


def engine_config(name: str, settings: Settings) -> tuple[str, Any]:
    """(kind, settings) of the engine `name`: its kind's section, or an instance's entry."""
    for kind, kind_spec in ENGINES.items():
        if kind_spec.instances is not None:
            named = getattr(getattr(settings, kind), kind_spec.instances)
            if name in named:
                return kind, named[name]
    if name not in ENGINES:
        known = ", ".join(sorted([*ENGINES, *instances(settings)]))
        raise ValueError(f"unknown engine {name!r}; known: {known}")
    return name, getattr(settings, name)


def construct(name: str, kind: str, config: Any) -> Engine:
    """Engine `name` of `kind`: a kind with instances is told the name it runs under."""
    kind_spec = spec(kind)
    named = kind_spec.instances is not None and name != kind
    return kind_spec.build(config, name=name if named else None)


def build_engine(name: str, settings: Settings) -> Engine:
    """The engine `name`, configured by its section of `settings`, or an instance of that name."""
    instances(settings)  # refuses a name taken twice
    kind, config = engine_config(name, settings)
    return construct(name, kind, config)


class EngineUnavailable(LookupError):
    """A configured engine cannot take new work (not loaded, loading, failed, draining) and no
    fallback in its chain can either."""


class EngineBusy(RuntimeError):
    """A load, unload or reconfiguration that cannot happen in the engine's present state."""


class EngineRegistry:
    """The engines this process serves, keyed by name: their state, leases, health and fallbacks.

    Loads run in the background (`load`), unloads drain first (`unload`), new settings load
    beside the serving instance (`configure`); every state change happens on the event loop,
    so readers (`engines`, `usable`, `choose`) see one consistent picture without locks.
    """

    def __init__(
        self, engines: dict[str, Engine], default: str, *, configs: dict[str, tuple[str, BaseModel]] | None = None,
        fallbacks: dict[str, list[str]] | None = None, drain_timeout_s: float = 30.0, retry_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        configs = configs or {}
        self._entries: dict[str, ManagedEngine] = {}
        self.default = default
        self.fallbacks: dict[str, list[str]] = dict(fallbacks or {})
        """Engine name -> the engines that take over its contexts when it fails, in order."""
        self.drain_timeout_s = drain_timeout_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        for name, engine in engines.items():
            kind, config = configs.get(name, (None, None))
            entry = ManagedEngine(name, kind, config, engine, health=EngineHealth(retry_after_s))
            if engine.ready:  # handed in loaded (tests, tools): it serves as it is
                entry.state, entry.instance, entry.started = EngineState.READY, Instance(engine), True
            self._entries[name] = entry

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineRegistry:
        engines = {name: build_engine(name, settings) for name in settings.engines}
        return cls(
            engines, settings.default_engine,
            configs={name: engine_config(name, settings) for name in settings.engines},
            fallbacks=settings.failover.fallbacks, drain_timeout_s=settings.drain_timeout_s,
            retry_after_s=settings.failover.retry_after_s,
        )  # fmt: skip

    def register(self, name: str, engine: Engine) -> ManagedEngine:
        """Add an engine built elsewhere (a test's fault-injecting engine), unloaded: `start` or
        `load` loads it. It has no settings section, so it can be loaded only once."""
        if name in self._entries:
            raise EngineBusy(f"engine '{name}' is already configured")
        entry = ManagedEngine(name, None, None, engine, health=EngineHealth(self.retry_after_s))
        self._entries[name] = entry
        return entry

    # -- reading --------------------------------------------------------------------------------

    @property
    def engines(self) -> dict[str, Engine]:
        """Every engine that is loaded, loading, draining or failed (not the unloaded ones)."""
        return {n: e.engine for n, e in self._entries.items() if e.state is not EngineState.UNLOADED}

    def entry(self, name: str) -> ManagedEngine | None:
        return self._entries.get(name)

    def entries(self) -> list[ManagedEngine]:
        return list(self._entries.values())

    def get(self, name: str | None) -> Engine | None:
        return self.engines.get(name or self.default)

    def info_of(self, name: str) -> Engine | None:
        """The engine object of any configured engine, loaded or not (for its `info`)."""
        entry = self._entries.get(name)
        return None if entry is None else entry.engine

    @property
    def load_errors(self) -> dict[str, str]:
        return {n: e.error or "failed" for n, e in self._entries.items() if e.state is EngineState.FAILED}

    def usable(self, name: str) -> bool:
        """Takes new contexts now: loaded and ready, not draining, not degraded (or due a retry)."""
        entry = self._entries.get(name)
        return (
            entry is not None
            and entry.state is EngineState.READY
            and entry.engine.ready
            and entry.health.available(self.clock())
        )

    def chain(self, name: str) -> list[str]:
        """`name`'s fallbacks, theirs after them, each once, in order (never `name` itself)."""
        out: list[str] = []
        todo = list(self.fallbacks.get(name, []))
        while todo:
            nxt = todo.pop(0)
            if nxt != name and nxt not in out:
                out.append(nxt)
                todo.extend(self.fallbacks.get(nxt, []))
        return out

    def choose(self, name: str, *, speed: float = 1.0, skip: Collection[str] = ()) -> str | None:
        """The engine to start new work on for `name`: itself if usable, else the first usable
        fallback that can honour `speed`; None if none can."""
        for candidate in (name, *self.chain(name)):
            if candidate in skip or not self.usable(candidate):
                continue
            if speed != 1.0 and not self._entries[candidate].engine.info.capabilities.speed:
                continue
            return candidate
        return None

    @property
    def ready(self) -> bool:
        """Serving: nothing is loading, the default can take work, and every failed engine has a
        fallback that can (an engine unloaded on purpose does not count)."""
        for name, entry in self._entries.items():
            if entry.state is EngineState.LOADING:
                return False
            if entry.state is EngineState.FAILED and self.choose(name) is None:
                return False
        return self.choose(self.default) is not None

    # -- leases and health ----------------------------------------------------------------------

    def lease(self, name: str) -> Lease | None:
        """A claim on `name`'s serving instance, held by a context until it ends (drains wait for it)."""
        entry = self._entries.get(name)
        if entry is None or entry.instance is None:
            return None
        return entry.instance.acquire()

    def failed(self, name: str, reason: str) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.health.record_failure(self.clock(), reason)

    def succeeded(self, name: str, started_at: float) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.health.record_success(started_at)

    # -- loading and unloading ------------------------------------------------------------------

    def _entry(self, name: str) -> ManagedEngine:
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _fresh(self, entry: ManagedEngine) -> Engine:
        """The object to load: the one built at configuration if never started, else a new one."""
        if not entry.started:
            return entry.engine
        if entry.kind is None or entry.config is None:
            raise EngineBusy(
                f"engine '{entry.name}' was built outside the registry and cannot be loaded again"
            )
        return construct(entry.name, entry.kind, entry.config)

    def load(self, name: str) -> ManagedEngine:
        """Start loading `name` in the background (no-op if loaded or loading); KeyError if unknown,
        EngineBusy while it drains."""
        entry = self._entry(name)
        if entry.state in (EngineState.LOADING, EngineState.READY):
            return entry
        if entry.state is EngineState.DRAINING:
            raise EngineBusy(f"engine '{name}' is unloading; load it again once it is unloaded")
        engine = self._fresh(entry)
        entry.engine, entry.started, entry.state, entry.error = engine, True, EngineState.LOADING, None
        entry.instance = Instance(engine)
        entry.health = EngineHealth(self.retry_after_s)
        entry.task = self._spawn(self._load(entry, entry.instance))
        return entry

    async def _load(self, entry: ManagedEngine, instance: Instance) -> None:
        started = time.monotonic()
        try:
            await instance.engine.start()
        except asyncio.CancelledError:
            await _stop_quietly(instance.engine, entry.name)
            raise
        except Exception as exc:  # reported in GET /v1/engines, /ready and the log
            log.exception("engine failed to load", extra={"engine": entry.name})
            entry.state, entry.error = EngineState.FAILED, f"{type(exc).__name__}: {exc}"
            await _stop_quietly(instance.engine, entry.name)
            return
        entry.state = EngineState.READY
        log.info(
            "engine ready", extra={"engine": entry.name, "seconds": round(time.monotonic() - started, 3)}
        )

    def unload(self, name: str) -> ManagedEngine:
        """Drain `name` in the background, then stop it and free its memory (no-op if unloaded)."""
        entry = self._entry(name)
        if entry.state in (EngineState.UNLOADED, EngineState.DRAINING):
            return entry
        loading = entry.task if entry.state is EngineState.LOADING else None
        if loading is not None:
            loading.cancel()
        if entry.reloading and entry.task is not None:
            entry.task.cancel()  # new settings were loading beside it: they go too
            entry.reloading = False
        entry.state = EngineState.DRAINING
        entry.task = self._spawn(self._drain(entry, loading))
        return entry

    async def _drain(self, entry: ManagedEngine, loading: asyncio.Task[None] | None) -> None:
        instance = entry.instance
        if loading is not None:
            await asyncio.gather(loading, return_exceptions=True)
        elif instance is not None:
            await self._retire(entry.name, instance)
        entry.instance, entry.state, entry.error = None, EngineState.UNLOADED, None
        entry.health.reset()
        log.info("engine unloaded", extra={"engine": entry.name})

    async def _retire(self, name: str, instance: Instance) -> None:
        """Wait for `instance`'s contexts (at most `drain_timeout_s`), stop it, give its memory back."""
        if not await instance.wait_idle(self.drain_timeout_s):
            log.warning(
                "engine drain timed out: stopping it under running contexts",
                extra={"engine": name, "contexts": instance.leases},
            )
        await _stop_quietly(instance.engine, name)
        await asyncio.to_thread(release_freed_memory)

    def configure(self, name: str, kind: str, config: BaseModel) -> ManagedEngine:
        """Add engine `name` (unloaded), or give an existing one new settings: a ready engine loads
        them beside the serving instance and switches over once they are ready (the old one drains);
        a loading one starts again with them; otherwise they apply at the next load."""
        engine = construct(name, kind, config)
        entry = self._entries.get(name)
        if entry is None:
            entry = ManagedEngine(name, kind, config, engine, health=EngineHealth(self.retry_after_s))
            self._entries[name] = entry
            return entry
        if entry.state is EngineState.DRAINING:
            raise EngineBusy(f"engine '{name}' is unloading; configure it once it is unloaded")
        entry.kind, entry.config = kind, config
        if entry.state is EngineState.READY:
            entry.reloading, entry.error = True, None
            entry.task = self._spawn(self._reload(entry, Instance(engine)))
        elif entry.state is EngineState.LOADING:
            assert entry.task is not None
            entry.task.cancel()
            entry.engine, entry.started, entry.state = engine, False, EngineState.UNLOADED
            self.load(name)
        else:
            entry.engine, entry.started = engine, False
        return entry

    async def _reload(self, entry: ManagedEngine, fresh: Instance) -> None:
        try:
            await fresh.engine.start()
        except asyncio.CancelledError:
            await _stop_quietly(fresh.engine, entry.name)
            raise
        except Exception as exc:  # the serving instance stays; the error is shown
            log.exception("engine failed to load new settings", extra={"engine": entry.name})
            entry.reloading, entry.error = False, f"new settings did not load: {type(exc).__name__}: {exc}"
            await _stop_quietly(fresh.engine, entry.name)
            return
        old = entry.instance
        entry.engine, entry.instance, entry.started, entry.reloading = fresh.engine, fresh, True, False
        entry.health.reset()
        log.info("engine reloaded with new settings", extra={"engine": entry.name})
        if old is not None:
            entry.retiring.append(old)
            try:
                await self._retire(entry.name, old)
            finally:
                entry.retiring.remove(old)

    async def wait_idle(self) -> None:
        """Until every load, unload and reload started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def start(self) -> None:
        """Load every configured engine concurrently and wait; failures are kept for /ready."""
        for name, entry in self._entries.items():
            if entry.state is EngineState.UNLOADED:
                self.load(name)
        await self.wait_idle()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        live = (EngineState.LOADING, EngineState.READY, EngineState.DRAINING)
        engines = [e.engine for e in self._entries.values() if e.started and e.state in live]
        engines += [i.engine for e in self._entries.values() for i in e.retiring]
        await asyncio.gather(*(e.stop() for e in engines), return_exceptions=True)


async def _stop_quietly(engine: Engine, name: str) -> None:
    try:
        await engine.stop()
    except Exception:  # a model that fails to stop is still dropped
        log.exception("engine failed to stop", extra={"engine": name})
