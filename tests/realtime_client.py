"""A small test client for the native realtime protocol (`GET /v1/realtime`), JSON or msgpack.

It records everything the server sends, in order, with arrival times, and
attributes audio to a context: in msgpack mode the server names it; in JSON
mode a binary frame belongs to the context of the last `segment.started`
(contexts speak one at a time and `segment.started` precedes its audio).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.server import LiveServer

MSGPACK = "realtime.msgpack.v1"


@dataclass
class Audio:
    data: bytes
    context_id: str | None
    at: float
    """time.monotonic() at arrival."""


@dataclass
class Event:
    body: dict[str, Any]
    at: float

    @property
    def type(self) -> str:
        return str(self.body.get("type"))

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


Item = Audio | Event


def ws_url(server: LiveServer, **query: Any) -> str:
    url = server.url.replace("http://", "ws://") + "/v1/realtime"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


class ServerError(AssertionError):
    """An `error` event arrived while waiting for something else."""


class RealtimeClient:
    def __init__(self, ws: ClientConnection, msgpack_mode: bool) -> None:
        self.ws = ws
        self.msgpack = msgpack_mode
        self.items: list[Item] = []
        self.current_context: str | None = None
        self.created: dict[str, Any] = {}

    # -- sending ---------------------------------------------------------------------------

    async def send(self, type: str, **fields: Any) -> None:
        message = {"type": type, **fields}
        if self.msgpack:
            await self.ws.send(msgpack.packb(message, use_bin_type=True))
        else:
            await self.ws.send(json.dumps(message))

    async def send_audio(self, data: bytes) -> None:
        """Uplink audio: a binary frame (JSON mode) or an `input_audio` message (msgpack)."""
        if self.msgpack:
            await self.ws.send(msgpack.packb({"type": "input_audio", "audio": data}, use_bin_type=True))
        else:
            await self.ws.send(data)

    async def append(self, text: str, context_id: str | None = None) -> None:
        fields: dict[str, Any] = {"text": text}
        if context_id is not None:
            fields["context_id"] = context_id
        await self.send("text.append", **fields)

    async def done(self, context_id: str | None = None) -> None:
        await self.send("text.done", **({} if context_id is None else {"context_id": context_id}))

    async def update(self, **patch: Any) -> dict[str, Any]:
        await self.send("session.update", **patch)
        return (await self.expect("session.updated")).body

    # -- receiving -------------------------------------------------------------------------

    async def recv(self, timeout: float = 10.0) -> Item:
        """The next message; TimeoutError after `timeout` seconds of silence."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        now = time.monotonic()
        item: Item
        if self.msgpack:
            assert isinstance(raw, bytes), "the msgpack subprotocol must only send binary frames"
            body = msgpack.unpackb(raw, raw=False)
            assert isinstance(body, dict) and isinstance(body.get("type"), str), body
            if body["type"] == "audio":
                assert isinstance(body["audio"], bytes), "audio must be a msgpack bin field"
                item = Audio(body["audio"], body.get("context_id"), now)
            else:
                item = Event(body, now)
        elif isinstance(raw, bytes):
            item = Audio(raw, self.current_context, now)
        else:
            body = json.loads(raw)
            assert isinstance(body, dict) and isinstance(body.get("type"), str), body
            item = Event(body, now)
        if isinstance(item, Event) and item.type == "segment.started":
            self.current_context = item["context_id"]
        self.items.append(item)
        return item

    async def until(self, predicate: Callable[[Item], bool], timeout: float = 10.0) -> Item:
        """Receive until `predicate` holds for an item (returned); TimeoutError past `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message in time")
            item = await self.recv(left)
            if predicate(item):
                return item

    async def expect(
        self, type: str, timeout: float = 10.0, *, allow_errors: bool = False, **match: Any
    ) -> Event:
        """The next event of `type` whose fields equal `match`; unexpected `error` events fail."""

        def wanted(item: Item) -> bool:
            if not isinstance(item, Event):
                return False
            if item.type == "error" and type != "error" and not allow_errors:
                raise ServerError(f"unexpected error event while waiting for {type}: {item.body}")
            return item.type == type and all(item.get(k) == v for k, v in match.items())

        item = await self.until(wanted, timeout)
        assert isinstance(item, Event)
        return item

    async def quiet(self, seconds: float) -> list[Item]:
        """Everything received during the next `seconds` (the caller asserts on it)."""
        got: list[Item] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(await self.recv(left))
            except TimeoutError:
                break
        return got

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        """Read until the server closes; returns (close code, reason) as the client received them."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the server did not close the connection")
            try:
                await self.recv(left)
            except ConnectionClosed:
                break
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)

    # -- analysis --------------------------------------------------------------------------

    def events(self, type: str | None = None, **match: Any) -> list[Event]:
        return [
            i
            for i in self.items
            if isinstance(i, Event)
            and (type is None or i.type == type)
            and all(i.get(k) == v for k, v in match.items())
        ]

    def audio(self, context_id: str | None = None) -> bytes:
        return b"".join(
            i.data
            for i in self.items
            if isinstance(i, Audio) and (context_id is None or i.context_id == context_id)
        )

    def index(self, item: Item) -> int:
        return next(n for n, i in enumerate(self.items) if i is item)

    async def speak(self, text: str, context_id: str | None = None, timeout: float = 20.0) -> Event:
        """Append `text`, finish the context, and wait for its `context.done`."""
        await self.append(text, context_id)
        await self.done(context_id)
        if context_id is None:
            started = await self.expect("segment.started", timeout)
            context_id = started["context_id"]
        return await self.expect("context.done", timeout, context_id=context_id)


@asynccontextmanager
async def session(
    server: LiveServer,
    *,
    msgpack_mode: bool = False,
    query: dict[str, Any] | None = None,
    **connect_kwargs: Any,
) -> AsyncIterator[RealtimeClient]:
    """Connect, read `session.created`, yield the client."""
    subprotocols = [MSGPACK] if msgpack_mode else None
    async with connect(ws_url(server, **(query or {})), subprotocols=subprotocols, **connect_kwargs) as ws:  # type: ignore[arg-type]
        client = RealtimeClient(ws, msgpack_mode)
        client.created = (await client.expect("session.created", 10.0)).body
        yield client


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` without blocking the event loop; False on timeout (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run one test coroutine on a fresh event loop, bounded by `timeout`."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
