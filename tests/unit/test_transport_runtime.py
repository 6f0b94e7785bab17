"""The transport runtime with a fake dialect: what every adapter gets without writing it.

A dialect is a `SessionTransport` (how events, audio and the close look on its wire) and a
receive loop; the runtime takes the slot, opens the session (or refuses it), registers it for
the control API, serves it and closes it. Here the dialect is a recorder and the engine a
scripted one: no socket, no server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime.control.settings import load_settings
from realtime.engines.registry import EngineRegistry
from realtime.gateway import Gateway
from realtime.session.config import ConfigError
from realtime.session.errors import ClientError
from realtime.session.outbox import OutboxOverflow
from realtime.session.realtime import RealtimeSession
from realtime.transport.close_codes import Close, CloseCode
from realtime.transport.runtime import Opening, Refused, SessionRuntime, close_for
from tests.session_harness import ScriptedEngine


class FakeDialect:
    """Records what the runtime and the session hand a transport."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    async def send_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    async def send_audio(self, data: bytes, context_id: str) -> None:
        self.audio.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def make_runtime(**settings: Any) -> SessionRuntime:
    engines = EngineRegistry({"scripted": ScriptedEngine()}, "scripted")  # type: ignore[dict-item]
    return SessionRuntime(Gateway(load_settings(**settings), engines=engines))


async def forever(session: RealtimeSession) -> Close | None:
    await asyncio.Event().wait()
    return None


def test_close_codes_are_the_documented_ones() -> None:
    assert {c.value for c in CloseCode} == {1000, 1008, 1009, 1011, 4408}
    assert Close(CloseCode.IDLE, "idle timeout") == (4408, "idle timeout")


def test_run_opens_registers_serves_and_closes_a_session() -> None:
    runtime = make_runtime()
    gw = runtime.gateway
    conn = FakeDialect()
    seen: list[RealtimeSession] = []

    async def receive(session: RealtimeSession) -> Close | None:
        seen.append(session)
        assert gw.sessions.get(session.id, "key-1") is session, "registered for the control API"
        assert gw.limiter.total == 1
        session.append("Hello there.", "a")
        session.close_when_done()  # the session ends once "a" is spoken
        return await forever(session)

    opening = Opening("fake", "key-1", preset={"output": {"lead_ms": 0}}, text_source="fake")
    asyncio.run(asyncio.wait_for(runtime.run(conn, api_key="key-1", opening=opening, receive=receive), 10))
    (session,) = seen
    assert session.transport == "fake" and session.api_key == "key-1" and session.text_source == "fake"
    assert session.id.startswith("sess_")
    assert conn.types()[0] == "session.created" and conn.events[0]["session_id"] == session.id
    assert conn.types()[-1] == "context.done" and conn.audio
    assert conn.closed == (CloseCode.NORMAL, "session closed")
    assert len(gw.sessions) == 0 and gw.limiter.total == 0, "unregistered, slot released"


def test_a_receive_loop_may_end_the_session_with_its_own_close() -> None:
    runtime = make_runtime()
    conn = FakeDialect()

    async def receive(session: RealtimeSession) -> Close | None:
        return Close(CloseCode.NORMAL, "call ended")

    asyncio.run(runtime.run(conn, api_key=None, opening=Opening("fake", None), receive=receive))
    assert conn.closed == (CloseCode.NORMAL, "call ended")


@pytest.mark.parametrize(
    ("preset", "field"),
    [({"voice": "nobody"}, "voice"), ({"output": {"encoding": "nope"}}, "output.encoding")],
)
def test_a_bad_preset_is_refused_with_an_error_and_a_policy_close(preset: dict[str, Any], field: str) -> None:
    runtime = make_runtime()
    conn = FakeDialect()
    asyncio.run(
        runtime.run(conn, api_key=None, opening=Opening("fake", None, preset=preset), receive=forever)
    )
    (event,) = conn.events
    assert event["type"] == "error" and event["code"] == "invalid_config" and field in event["message"]
    assert conn.closed is not None and conn.closed[0] == CloseCode.POLICY and field in conn.closed[1]
    assert runtime.gateway.limiter.total == 0


def test_a_preset_that_fails_to_compute_is_a_configuration_refusal() -> None:
    def preset() -> dict[str, Any]:
        raise ConfigError("sample_rate", "must be an integer")

    with pytest.raises(Refused) as refused:
        make_runtime().open(Opening("fake", None, preset=preset))
    assert (refused.value.code, refused.value.param) == ("invalid_config", "sample_rate")


def test_over_the_limits_the_client_is_told_why() -> None:
    runtime = make_runtime(max_sessions=1)
    conn = FakeDialect()

    async def scenario() -> None:
        with runtime.slot("someone"):
            await runtime.run(conn, api_key=None, opening=Opening("fake", None), receive=forever)

    asyncio.run(scenario())
    assert conn.events == [{"type": "error", "code": "too_many_sessions",
                            "message": "server is at its limit of 1 concurrent sessions"}]  # fmt: skip
    assert conn.closed == (CloseCode.POLICY, "server is at its limit of 1 concurrent sessions")


def test_an_opening_read_from_the_client_may_refuse_or_find_it_gone() -> None:
    runtime = make_runtime()
    conn = FakeDialect()

    async def timed_out() -> Opening | None:
        raise Refused("idle_timeout", "idle timeout", close=CloseCode.IDLE)

    async def gone() -> Opening | None:
        return None

    asyncio.run(runtime.run(conn, api_key=None, opening=timed_out, receive=forever))
    assert conn.closed == (CloseCode.IDLE, "idle timeout")
    conn = FakeDialect()
    asyncio.run(runtime.run(conn, api_key=None, opening=gone, receive=forever))
    assert conn.closed is None and conn.events == [], "nothing to say to a client that left"
    assert runtime.gateway.limiter.total == 0


def test_a_chosen_session_id_is_refused_while_that_key_has_it() -> None:
    runtime = make_runtime()
    first = runtime.open(Opening("fake", "k", session_id="call-1"))
    assert runtime.gateway.sessions.add(first)
    with pytest.raises(Refused, match="already exists") as refused:
        runtime.open(Opening("fake", "k", session_id="call-1"))
    assert refused.value.close == CloseCode.POLICY
    runtime.gateway.sessions.remove(first)
    assert runtime.open(Opening("fake", "k", session_id="call-1")).id == "call-1", "free again once it ends"


def test_client_errors_become_error_events_and_the_session_goes_on() -> None:
    runtime = make_runtime()
    session = runtime.open(Opening("fake", None))
    with runtime.client_errors(session):
        raise ClientError("unknown_context", "no open context 'x'", "x")
    assert session.outbox.events() == [
        {"type": "error", "code": "unknown_context", "message": "no open context 'x'", "context_id": "x"}
    ]


def test_how_a_session_ended_decides_its_close() -> None:
    session = make_runtime().open(Opening("fake", None))
    assert close_for(TimeoutError(), session) == (CloseCode.POLICY, "client stopped reading audio")
    assert close_for(OutboxOverflow(), session) == (CloseCode.POLICY, "client stopped reading its events")
    assert close_for(ConnectionResetError(), session) == (CloseCode.NORMAL, "client went away")
    assert close_for(RuntimeError("bug"), session) == (CloseCode.INTERNAL, "internal error")
