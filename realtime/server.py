"""uvicorn's server, with a deadline on connections that stop acknowledging data.

When the gateway gives up on a client that stopped reading (a send timeout), the
app returns and uvicorn closes the transport; but asyncio's `close()` waits for
the write buffer to drain, which a client that never reads never allows: the
socket would stay open with megabytes queued in the kernel, and the client could
open more. `TCP_USER_TIMEOUT` on the listening sockets (every accepted
connection inherits it) makes Linux reset a connection whose sent data has gone
unacknowledged, or stayed unsent behind a zero window, for that long. Idle
connections are unaffected: the timer only runs while data is outstanding.
"""

from __future__ import annotations

import logging
import socket

import uvicorn

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
