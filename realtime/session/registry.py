"""Open realtime sessions by id, for the session control API and telephony `start`.

With API keys configured, ids are per key: a session id chosen by one tenant (a Twilio
`customParameters.session_id`) neither collides with nor reveals another tenant's session,
and no key can squat ids another will use. Without keys there is one namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .realtime import RealtimeSession


class SessionRegistry:
    def __init__(self, *, per_key: bool) -> None:
        self.per_key = per_key
        self._sessions: dict[tuple[str, str], RealtimeSession] = {}

    def _owner(self, key: str | None) -> str:
        return (key or "") if self.per_key else ""

    def add(self, session: RealtimeSession) -> bool:
        """Register `session` under its key; False if that key already has a session with its id."""
        slot = (self._owner(session.api_key), session.id)
        if slot in self._sessions:
            return False
        self._sessions[slot] = session
        return True

    def remove(self, session: RealtimeSession) -> None:
        slot = (self._owner(session.api_key), session.id)
        if self._sessions.get(slot) is session:
            del self._sessions[slot]

    def get(self, session_id: str, key: str | None) -> RealtimeSession | None:
        """The session `key` may see by this id."""
        return self._sessions.get((self._owner(key), session_id))

    # Diagnostics and tests: by id across keys.
    def __contains__(self, session_id: object) -> bool:
        return any(sid == session_id for _, sid in self._sessions)

    def __getitem__(self, session_id: str) -> RealtimeSession:
        for (_, sid), session in self._sessions.items():
            if sid == session_id:
                return session
        raise KeyError(session_id)

    def __iter__(self) -> Iterator[str]:
        return (sid for _, sid in self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    def values(self) -> list[RealtimeSession]:
        return list(self._sessions.values())
