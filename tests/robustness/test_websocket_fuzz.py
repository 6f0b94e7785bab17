"""The native realtime WebSocket under garbage, floods and connect-and-drop, beside a canary.

Every bad frame must get the documented answer: an `error` event with the documented code (the
session goes on and still speaks), or the documented close (1008, 1009) — never 1011, never a
silent hang. Meanwhile a canary session streams an answer token by token and must get all of
its audio with no error. Seeded random garbage keeps CI deterministic.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import msgpack
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from loadtest.common import PARAGRAPH
from tests.realtime_client import RealtimeClient, run, session

from .conftest import GOOD_KEY, WRONG_KEYS, GatewayProcess

QUERY = {"api_key": GOOD_KEY}
DOCUMENTED_ERRORS = {
    "invalid_json", "invalid_msgpack", "invalid_frame", "invalid_message", "unknown_type", "invalid_field",
    "invalid_config", "invalid_text", "text_too_long", "unknown_context", "context_finished",
    "too_many_contexts", "no_input_audio", "input_audio_too_fast",
}  # fmt: skip
DOCUMENTED_CLOSES = {1000, 1008, 1009}

WRONG_SHAPES: list[tuple[Any, str]] = [
    ({"type": 5}, "invalid_message"),
    ([], "invalid_message"),
    ("just a string", "invalid_message"),
    ({"type": "text.appendix"}, "unknown_type"),
    ({"type": "text.append", "text": 5}, "invalid_field"),
    ({"type": "text.append", "text": None}, "invalid_field"),
    ({"type": "text.append", "text": "x", "context_id": ""}, "invalid_field"),
    ({"type": "text.append", "text": "x", "context_id": "c" * 129}, "invalid_field"),
    ({"type": "text.append", "text": "x", "context_id": 7}, "invalid_field"),
    ({"type": "playback.position", "played_ms": -1}, "invalid_field"),
    ({"type": "playback.position", "played_ms": "10"}, "invalid_field"),
    ({"type": "playback.position", "played_ms": 10**400}, "invalid_field"),
    ({"type": "session.update", "voice": 5}, "invalid_config"),
    ({"type": "session.update", "engine": "nope"}, "invalid_config"),
    ({"type": "session.update", "output": {"sample_rate": "x"}}, "invalid_config"),
    ({"type": "session.update", "output": {"encoding": "wma"}}, "invalid_config"),
    ({"type": "session.update", "speed": 99}, "invalid_config"),
    ({"type": "text.flush", "context_id": "never-opened"}, "unknown_context"),
    ({"type": "text.append", "text": "x" * 10_001}, "text_too_long"),
]


def garbage_texts(rng: random.Random, count: int) -> list[str]:
    """Text frames that are not valid JSON objects: cut JSON, noise, deep nesting, odd Unicode."""
    valid = json.dumps({"type": "text.append", "text": "hello"})
    texts = ["", "{", "}", "null", "[1,", '{"type":', "NaN", "[" * 100_000 + "]" * 100_000, "\x00\x01"]
    for _ in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            texts.append(valid[: rng.randrange(1, len(valid))])
        elif kind == 1:
            texts.append("".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(1, 80))))
        else:
            texts.append(json.dumps(rng.choice([1, 2.5, True, None, "x", [1, 2]])))
    return texts


async def expect_error_or_documented_close(client: RealtimeClient, wanted: set[str] | None = None) -> str:
    """The next `error` event's code (checked against `wanted` or the documented codes)."""
    event = await client.expect("error", 10)
    assert event["code"] in (wanted or DOCUMENTED_ERRORS), event.body
    return event["code"]


async def still_speaks(client: RealtimeClient) -> None:
    done = await client.speak("Still fine.", timeout=30)
    assert done["audio_ms"] > 300


class Canary:
    """A session answering token by token, as an LLM would, while the fuzz runs beside it."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.answers = 0
        self.errors: list[dict[str, Any]] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        async with session(self.gateway, query=QUERY) as client:
            while not self._stop.is_set():
                context_id = f"answer-{self.answers}"
                # 20 words, ~7 s of audio: as long as the attacks take, so that one answer spans them
                # (40 words, ~16 s, kept the test waiting ~10 s after the last attack).
                for word in PARAGRAPH.split(" ")[:20]:
                    await client.append(word + " ", context_id)
                    await asyncio.sleep(0.01)
                await client.done(context_id)
                done = await client.expect("context.done", 60, allow_errors=True, context_id=context_id)
                self.errors += [e.body for e in client.events("error")]
                assert done["audio_ms"] > 5000, done.body
                self.answers += 1

    def stop(self) -> None:
        self._stop.set()


def test_garbage_frames_wrong_shapes_floods_and_drops_beside_a_healthy_canary(
    gateway: GatewayProcess,
) -> None:
    rng = random.Random(20261207)

    async def malformed_json() -> None:
        async with session(gateway, query=QUERY) as client:
            for text in garbage_texts(rng, 60):
                await client.ws.send(text)
                await expect_error_or_documented_close(client, {"invalid_json", "invalid_message"})
            await still_speaks(client)

    async def wrong_shapes() -> None:
        async with session(gateway, query=QUERY) as client:
            for message, code in WRONG_SHAPES:
                await client.ws.send(json.dumps(message))
                assert await expect_error_or_documented_close(client) == code, message
            await still_speaks(client)

    async def binary_garbage() -> None:
        async with session(gateway, query=QUERY) as client:
            for _ in range(20):
                await client.ws.send(rng.randbytes(rng.randrange(1, 4000)))
                await expect_error_or_documented_close(client, {"no_input_audio"})
            await still_speaks(client)

    async def msgpack_garbage() -> None:
        async with session(gateway, query=QUERY, msgpack_mode=True) as client:
            for _ in range(30):
                await client.ws.send(rng.randbytes(rng.randrange(1, 500)))
                await expect_error_or_documented_close(client)
            await client.ws.send("a text frame")
            assert await expect_error_or_documented_close(client) == "invalid_frame"
            for value in ([1, 2], 7, {"type": b"bytes"}, {"type": "input_audio", "audio": "not bytes"}):
                await client.ws.send(msgpack.packb(value, use_bin_type=True))
                await expect_error_or_documented_close(client, {"invalid_message", "invalid_field"})
            await still_speaks(client)

    async def oversized() -> None:
        async with session(gateway, query=QUERY) as client:
            await client.ws.send("x" * ((1 << 20) + 1))
            code, _reason = await client.wait_closed()
            assert code == 1009

    async def flood() -> None:
        async with session(gateway, query=QUERY) as client:
            for n in range(3000):
                await client.ws.send('{"type": "nope"}' if n % 2 else "{")
            codes = [await expect_error_or_documented_close(client) for _ in range(3000)]
            assert set(codes) == {"unknown_type", "invalid_json"}
            await still_speaks(client)

    async def flood_without_reading() -> None:
        """More errors than `max_queued_events` (10,000) left unread: the session is closed 1008, or,
        if the socket buffers took them all, every one of them arrives."""
        sent, received = 12_000, 0
        async with websockets.connect(f"{gateway.ws_url}/v1/realtime?api_key={GOOD_KEY}", max_queue=1) as ws:
            try:
                for _ in range(sent):
                    await ws.send("{")
                await asyncio.sleep(1.0)
                while received < sent + 1:  # session.created, then one error per frame
                    await asyncio.wait_for(ws.recv(), 10)
                    received += 1
            except ConnectionClosed:
                pass
        assert ws.close_code == 1008 or received == sent + 1, (ws.close_code, ws.close_reason, received)

    async def connect_and_drop() -> None:
        for n in range(60):
            ws = await websockets.connect(f"{gateway.ws_url}/v1/realtime?api_key={GOOD_KEY}")
            if n % 2:
                ws.transport.abort()
            else:
                await ws.close()

    async def wrong_keys() -> None:
        for key in ("", *WRONG_KEYS):
            async with websockets.connect(f"{gateway.ws_url}/v1/realtime?api_key={key}") as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1008 and "API key" in ws.close_reason

    async def scenario() -> None:
        canary = Canary(gateway)
        watching = asyncio.ensure_future(canary.run())
        started = time.monotonic()
        for attack in (malformed_json, wrong_shapes, binary_garbage, msgpack_garbage, oversized, flood,
                       flood_without_reading, connect_and_drop, wrong_keys):  # fmt: skip
            await attack()
            assert not watching.done(), f"the canary ended during {attack.__name__}: {watching}"
        canary.stop()
        await asyncio.wait_for(watching, 60)
        assert canary.answers >= 1 and not canary.errors, (canary.answers, canary.errors)
        assert time.monotonic() - started < 150

    run(scenario(), 240)
