"""The one recoverable client error: answered with an `error` event, the session stays open.

Raised by protocol parsing and by the session alike (a bad frame, an unknown
context, too many contexts); transports turn it into the event with `event()`,
the session control API into an HTTP status.
"""

from __future__ import annotations

from .server_events import ServerEvent, error


class ClientError(Exception):
    def __init__(self, code: str, message: str, context_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context_id = context_id

    def event(self) -> ServerEvent:
        return error(self.code, self.message, self.context_id)
