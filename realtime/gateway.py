"""The process-wide state every transport shares: settings, engines, limits, metrics.

One `Gateway` per app, built from settings without loading anything; `start`
loads the engines. Transports ask it for new speech contexts so every path
(REST, WebSocket, telephony) uses the same scheduler, limits and metrics; a
realtime session gets only the part it needs (`session_deps`), never the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from .control.auth import Authenticator, SessionLimiter
from .control.metrics import Metrics
from .control.settings import Settings
from .control.voices import Selection, VoiceResolver
from .engines.registry import EngineRegistry
from .session.context import SpeechContext
from .session.deps import SessionDeps
from .session.limits import SessionLimits
from .session.registry import SessionRegistry

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: Settings, engines: EngineRegistry | None = None) -> None:
        self.settings = settings
        self.engines = engines or EngineRegistry.from_settings(settings)
        self.metrics = Metrics(self.engines)
        self.voices = VoiceResolver(settings, self.engines)
        self.auth = Authenticator(settings.api_keys)
        self.limiter = SessionLimiter(
            settings.max_sessions, settings.max_sessions_per_key, per_key=self.auth.enabled
        )
        self._loading: asyncio.Task[None] | None = None
        self.sessions = SessionRegistry(per_key=self.auth.enabled)
        """Open realtime sessions, for the session control API."""

    @property
    def ready(self) -> bool:
        return self.engines.ready

    def start_loading(self) -> None:
        """Load engines in the background so /health answers while models warm up."""
        self._loading = asyncio.get_running_loop().create_task(self.engines.start())

    async def wait_ready(self) -> None:
        if self._loading is not None:
            await self._loading

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        await self.engines.stop()

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
    ) -> SpeechContext:
        return SpeechContext(
            selection.engine,
            voice=selection.voice,
            speed=speed,
            planner=self.settings.planner,
            session_id=session_id or uuid.uuid4().hex[:12],
            context_id=context_id,
            max_ahead_s=self.settings.max_ahead_s,
            max_text_chars=max(self.settings.max_input_chars, 100_000),
            low_latency=low_latency,
            stretch_pauses=stretch_pauses,
        )
