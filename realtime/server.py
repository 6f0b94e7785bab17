"""uvicorn's server, with deadlines on connections that stall: unacknowledged data, unfinished headers.

When the gateway gives up on a client that stopped reading (a send timeout), the
app returns and uvicorn closes the transport; but asyncio's `close()` waits for
the write buffer to drain, which a client that never reads never allows: the
socket would stay open with megabytes queued in the kernel, and the client could
open more. `TCP_USER_TIMEOUT` on the listening sockets (every accepted
connection inherits it) makes Linux reset a connection whose sent data has gone
unacknowledged, or stayed unsent behind a zero window, for that long. Idle
connections are unaffected: the timer only runs while data is outstanding.

uvicorn also sets no deadline on a request's headers: a connection that sends half a
request line and then nothing (slowloris) is held for as long as the client likes.
`header_deadline_protocol` closes it, with a 408, when its headers are not complete
`header_timeout_s` after the connection opened, and again after its request's first byte (or,
for a request pipelined behind a response, after that response ended): a client gets at most
twice the timeout. A response in flight is never interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, unacked_timeout_s: float) -> None:
        super().__init__(config)
        self.unacked_timeout_s = unacked_timeout_s

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        if option is None or self.unacked_timeout_s <= 0:  # not Linux, or off: stalled sockets linger
            return
        for server in self.servers:
            for sock in server.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, int(self.unacked_timeout_s * 1000))


_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def header_deadline_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing connections whose request headers stall."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        _awaiting_headers = False
        """A request has begun and its headers are not complete yet."""

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _responding(self) -> bool:
            """A response is still going out on this connection (a pipelined request waits behind it)."""
            return self.cycle is not None and not self.cycle.response_complete

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or self._responding():
                return  # never write into a response; its end re-arms the deadline
            log.debug("request headers incomplete: connection closed", extra={"timeout_s": header_timeout_s})
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._awaiting_headers = True
            if self._responding():
                self._disarm()  # pipelined behind a response: its deadline starts when that ends
            else:
                self._arm()

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._awaiting_headers:
                self._arm()  # a pipelined request's headers are still trickling in: uvicorn's
                # keep-alive timer, armed just now, is cancelled by the next byte they send
            else:
                self._disarm()  # an idle keep-alive connection is uvicorn's keep-alive timeout's job

    return HeaderDeadlineProtocol
