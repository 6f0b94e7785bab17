"""The one recoverable client error: answered with an `error` event, the session stays open."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    def __init__(self, code: str, message: str, context_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context_id = context_id

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.context_id is not None:
            event["context_id"] = self.context_id
        return event
