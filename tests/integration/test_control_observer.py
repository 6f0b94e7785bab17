"""A control WebSocket that stops reading must not stall the call it watches."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest
import websockets

from tests import twilio_client as tw
from tests.server import LiveServer, wait_for

SEND_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def watched_server() -> Iterator[LiveServer]:
    with LiveServer(engines=["tone"], send_timeout_s=SEND_TIMEOUT_S) as live:
        yield live


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http", "ws", 1) + path


async def stalled_control_socket(server: LiveServer, session_id: str):  # type: ignore[no-untyped-def]
    """A control socket with a tiny receive buffer whose messages are never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no autotuning: fills after a few KB
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    return await websockets.connect(
        ws_url(server, f"/v1/sessions/{session_id}/control"), sock=sock, max_queue=1, max_size=None
    )


def test_a_control_socket_that_stops_reading_is_dropped_without_stalling_the_audio(
    watched_server: LiveServer,
) -> None:
    server = watched_server

    async def main() -> None:
        call = await websockets.connect(ws_url(server, "/v1/telephony/twilio"))
        await call.send(tw.connected())
        await call.send(tw.start("MZ-obs", session_id="call-obs", engine="tone"))
        assert await asyncio.to_thread(wait_for, lambda: "call-obs" in server.gateway.sessions, 5)
        control = await stalled_control_socket(server, "call-obs")
        await control.send(json.dumps({"type": "text.append", "text": "word " * 400}))
        await control.send(json.dumps({"type": "text.done"}))
        # Marks echoed by "Twilio" become events for the observer: ~4 KB each, megabytes in all,
        # far more than the stalled socket's buffers hold.
        name = "m" * 4000
        for _ in range(1500):
            await call.send(json.dumps({"event": "mark", "streamSid": "MZ-obs", "mark": {"name": name}}))
        arrivals: list[float] = []
        deadline = time.monotonic() + SEND_TIMEOUT_S + 3.0
        while time.monotonic() < deadline:
            message = tw.parse(await asyncio.wait_for(call.recv(), 5))
            if message["event"] == "media":
                arrivals.append(time.monotonic())
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        # Media is paced at 20 ms; a writer blocked on the observer would stop it for SEND_TIMEOUT_S.
        assert len(arrivals) > 200 and max(gaps) < 1.0, f"largest gap between media frames {max(gaps):.2f} s"
        # The stalled observer itself is given up on and closed with a reason.
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(control.recv(), 10)
        assert control.close_code == 1008 and "not reading" in control.close_reason
        await call.send(tw.stop("MZ-obs"))
        await call.close()

    asyncio.run(main())
