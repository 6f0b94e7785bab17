"""The process-wide state every transport shares: settings, engines, limits, metrics.

One `Gateway` per app, built from settings without loading anything; `start`
loads the engines. Transports ask it for new speech contexts so every path
(REST, WebSocket, telephony) uses the same scheduler, limits and metrics; a
realtime session gets only the part it needs (`session_deps`), never the gateway.
A new context starts on the engine asked for, or on the first usable engine of
its fallback chain, and holds a lease on it (an unload waits for the lease);
`RegistrySource` lets it fail over later (session/failover.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection
from typing import Any

from .control.auth import Authenticator, SessionLimiter
from .control.config_watch import ConfigWatcher, watched_path
from .control.hot_config import apply_patch
from .control.metrics import Metrics
from .control.settings import Settings
from .control.voices import Selection, VoiceResolver
from .engines.managed import EngineState
from .engines.registry import EngineRegistry, EngineUnavailable
from .session import failover
from .session.context import SpeechContext
from .session.deps import SessionDeps
from .session.failover import EngineLease
from .session.limits import SessionLimits
from .session.registry import SessionRegistry

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: Settings, engines: EngineRegistry | None = None) -> None:
        self.settings = settings
        self.engines = engines or EngineRegistry.from_settings(settings)
        self.metrics = Metrics(self.engines)
        self.voices = VoiceResolver(settings, self.engines)
        self.auth = Authenticator(settings.api_keys, settings.admin_keys)
        self.limiter = SessionLimiter(
            settings.max_sessions, settings.max_sessions_per_key, per_key=self.auth.enabled
        )
        self._loading: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self.sessions = SessionRegistry(per_key=self.auth.enabled)
        """Open realtime sessions, for the session control API."""
        self.source = RegistrySource(self)

    @property
    def ready(self) -> bool:
        return self.engines.ready

    def start_loading(self) -> None:
        """Load engines in the background so /health answers while models warm up."""
        loop = asyncio.get_running_loop()
        self._loading = loop.create_task(self.engines.start())
        path = watched_path()
        if self.settings.watch_config and path is not None:
            self._watching = loop.create_task(ConfigWatcher(path, self.patch_settings).run())

    async def wait_ready(self) -> None:
        if self._loading is not None:
            await self._loading

    async def stop(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        await self.engines.stop()

    def patch_settings(self, patch: dict[str, Any]) -> Settings:
        """Apply a change of hot settings (`PATCH /v1/config`, a watched file saved); ConfigPatchError
        if it cannot apply (nothing of it is applied then)."""
        new = apply_patch(self.settings, patch, [e.name for e in self.engines.entries()])
        self.apply_settings(new)
        return new

    def apply_settings(self, new: Settings) -> None:
        """Make `new` the settings new contexts read (`control/hot_config.py` made and checked it):
        one assignment each, on the event loop; running contexts keep what they were built with."""
        self.settings = new
        self.voices.settings = new
        registry = self.engines
        registry.default = new.default_engine
        registry.fallbacks = dict(new.failover.fallbacks)
        registry.retry_after_s = new.failover.retry_after_s
        for entry in registry.entries():
            entry.health.retry_after_s = new.failover.retry_after_s
        log.info("settings changed", extra={"default_engine": new.default_engine})

    def session_limits(self) -> SessionLimits:
        s = self.settings
        return SessionLimits(
            max_text_chars=s.max_text_chars,
            max_context_chars=s.max_context_chars,
            max_contexts=s.max_contexts,
            max_frame_bytes=s.max_frame_bytes,
            max_queued_events=s.max_queued_events,
            context_timeout_s=s.context_timeout_s,
        )

    def session_deps(self) -> SessionDeps:
        """What a realtime session needs from the process: names → engines, contexts, metrics, limits."""
        return SessionDeps(
            resolve=self.voices.resolve,
            new_context=self.new_context,
            metrics_for=self.metrics.session,
            start_hold_s=self.settings.planner.loaded_start_hold_ms / 1000.0,
            limits=self.session_limits(),
        )

    def new_context(
        self,
        selection: Selection,
        *,
        speed: float = 1.0,
        session_id: str | None = None,
        context_id: str = "",
        low_latency: bool = False,
        stretch_pauses: bool = True,
        text_mode: str = "auto",
        ssml: bool = False,
    ) -> SpeechContext:
        """A context on `selection`'s engine, or on the first usable fallback of its chain
        (`degraded`); EngineUnavailable if none can take work. `text_mode` (a session's or request's
        `normalize`) overrides `text.normalize` unless `auto`."""
        name = selection.engine_name
        chosen = self.engines.choose(name, speed=speed)
        if chosen is None:
            raise EngineUnavailable(self.unavailable(name))
        target = self.lease(chosen, selection.voice)
        if chosen != name:
            self.metrics.degraded_contexts.labels(name, chosen).inc()
        settings = self.settings  # one snapshot: a PATCH /v1/config meanwhile applies to the next context
        return SpeechContext(
            target.engine,
            voice=target.voice,
            speed=speed,
            planner=settings.planner,
            session_id=session_id or uuid.uuid4().hex[:12],
            context_id=context_id,
            max_ahead_s=settings.max_ahead_s,
            max_text_chars=max(settings.max_input_chars, 100_000),
            low_latency=low_latency,
            stretch_pauses=stretch_pauses,
            engine_name=chosen,
            source=self.source,
            release=target.release,
            degraded=chosen != name,
            stall_s=settings.failover.stall_ms / 1000.0,
            text_mode=text_mode if text_mode != "auto" else settings.text.normalize,
            ssml=ssml,
        )

    def lease(self, name: str, voice: str) -> EngineLease:
        """Engine `name` for a context that asked for `voice` (kept if the engine has it)."""
        engine = self.engines.engines[name]
        lease = self.engines.lease(name)
        return EngineLease(
            name, engine, self.voices.fallback_voice(engine.info, voice), lease.release if lease else _noop
        )

    def unavailable(self, name: str) -> str:
        """Why no context can start on `name` now, for the client."""
        entry = self.engines.entry(name)
        state = entry.state if entry is not None else EngineState.UNLOADED
        why = {
            EngineState.LOADING: "is still loading; retry shortly",
            EngineState.FAILED: f"failed to load ({entry.error if entry else ''})",
            EngineState.DRAINING: "is being unloaded",
            EngineState.UNLOADED: "is not loaded",
        }.get(state, "is degraded (it failed recently)")
        chain = self.engines.chain(name)
        tail = f", and none of its fallbacks ({', '.join(chain)}) can take work" if chain else ""
        return f"engine '{name}' {why}{tail}"


def _noop() -> None:
    pass


class RegistrySource:
    """The registry as a context sees it when its engine fails (`session.failover.EngineSource`)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    def unusable(self, name: str) -> str | None:
        registry = self._gw.engines
        entry = registry.entry(name)
        if entry is not None and entry.state is EngineState.DRAINING:
            return failover.DRAINING
        if entry is None or entry.state is not EngineState.READY or not entry.engine.ready:
            return failover.NOT_READY
        return None if registry.usable(name) else failover.DEGRADED

    def fallback(self, failed: str, *, voice: str, speed: float, skip: Collection[str]) -> EngineLease | None:
        chosen = self._gw.engines.choose(failed, speed=speed, skip=skip)
        return None if chosen is None else self._gw.lease(chosen, voice)

    def failed_over(self, source: str, target: str, reason: str) -> None:
        self._gw.metrics.failovers.labels(source, target, reason).inc()
        if failover.counts_against_engine(reason):
            self._gw.engines.failed(source, reason)

    def succeeded(self, name: str, started_at: float) -> None:
        self._gw.engines.succeeded(name, started_at)
