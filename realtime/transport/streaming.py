"""A streaming response that always closes its body iterator and runs a release hook.

Starlette cancels a streaming body when the client disconnects, but a body
generator suspended at `yield` is then only finalised by the garbage
collector. Closing it explicitly makes a disconnect cancel the speech context
(and its engine jobs) at once, and `on_close` frees the session slot even if
the body never started.

A client that stays connected but stops reading is caught by `send_timeout_s`:
once the socket buffers are full, the server's `send` waits for the client
forever. Each send only records when it began (`SendWatch`, as on WebSockets:
no task or timer per chunk); the response is watched every quarter of the
timeout, and a send stalled for longer ends it: the body is closed and the
slot released as on a disconnect. The app then returns with the response
incomplete, which makes uvicorn close the connection (it logs that the
response was not completed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..session.clock import MonotonicClock
from ..session.send_watch import CHECKS_PER_TIMEOUT, Expired, SendWatch, run_until

log = logging.getLogger(__name__)


class ClosingStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
        send_timeout_s: float | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._content = content
        self._on_close = on_close
        self._watch = SendWatch(send_timeout_s, MonotonicClock()) if send_timeout_s is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            watch = self._watch
            if watch is None:
                await super().__call__(scope, receive, send)
                return
            response = super().__call__(scope, receive, watch.watched(send))
            every_s = watch.timeout_s / CHECKS_PER_TIMEOUT
            if isinstance(await run_until(response, every_s=every_s, expired=watch.stalled), Expired):
                log.warning(
                    "client stopped reading the response: abandoned",
                    extra={"path": scope.get("path"), "send_timeout_s": watch.timeout_s},
                )
        finally:
            aclose = getattr(self._content, "aclose", None)
            if aclose is not None:
                await aclose()
            if self._on_close is not None:
                self._on_close()
