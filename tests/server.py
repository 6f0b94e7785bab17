"""A real uvicorn server on loopback, in a background thread, for integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from realtime.app import create_app, gateway_server
from realtime.control.settings import load_settings
from realtime.gateway import Gateway


class LiveServer:
    def __init__(
        self, wait_ready: bool = True, prepare: Callable[[Gateway], None] | None = None, **overrides: Any
    ) -> None:
        """`prepare` sees the gateway before the server starts (to register a test engine, say)."""
        self.settings = load_settings(**overrides)
        self.app = create_app(self.settings)
        if prepare is not None:
            prepare(self.app.state.gateway)
        self.server = gateway_server(self.app, self.settings, host="127.0.0.1", port=0)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if wait_ready:
            self.wait_ready()

    @property
    def gateway(self) -> Gateway:
        return self.app.state.gateway

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("engines did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is true; returns False on timeout (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
