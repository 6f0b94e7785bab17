"""Session control API: drive a realtime session's text from a server-side agent.

A telephony call's audio flows over its media stream, but its text comes from
the agent that runs the conversation. That agent posts text to
`/v1/sessions/{id}/...`, or attaches a control WebSocket that sends native
protocol commands and receives every event of the session (no audio).
One text source per session: a session fed by its own native WebSocket
refuses others, and while a control WebSocket is attached the REST calls are
refused (409).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..control.auth import extract_key
from ..gateway import Gateway
from ..session import server_events
from ..session.errors import ClientError
from ..session.observers import Observer
from ..session.realtime import RealtimeSession
from .close_codes import CloseCode
from .close_reason import close_reason
from .commands import apply_command
from .errors import ApiError
from .json_body import read_json_object
from .realtime_protocol import decode_text_frame, parse_command

log = logging.getLogger(__name__)

CONTROL = "control"
REST_COMMANDS = {"flush": "text.flush", "done": "text.done", "cancel": "context.cancel"}
STATUS_BY_CODE = {"unknown_context": 404, "too_many_contexts": 429, "engine_not_ready": 503}
"""HTTP status for a protocol error code; any other client mistake is a 400."""


def _find(gw: Gateway, session_id: str, key: str | None) -> RealtimeSession:
    session = gw.sessions.get(session_id, key)
    if session is None:
        raise ApiError(404, f"no open session '{session_id}'", param="session_id", code="session_not_found")
    return session


def _session_for_text(request: Request) -> RealtimeSession:
    gw: Gateway = request.app.state.gateway
    session = _find(gw, request.path_params["session_id"], extract_key(request.headers, request.query_params))
    if session.text_source is not None:
        raise ApiError(
            409, f"session '{session.id}' already takes text from its {session.text_source} connection",
            code="text_source_conflict",
        )  # fmt: skip
    return session


def _run(session: RealtimeSession, message: dict[str, Any], max_text: int) -> None:
    try:
        apply_command(session, parse_command(message, max_text_chars=max_text))
    except ClientError as exc:
        status = STATUS_BY_CODE.get(exc.code, 400)
        raise ApiError(status, exc.message, code=exc.code) from None


async def get_session(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    session = _find(gw, request.path_params["session_id"], extract_key(request.headers, request.query_params))
    return JSONResponse({**session.describe(), "transport": session.transport, "speaking": session.speaking})


async def post_text(request: Request) -> Response:
    """`{"text", "context_id"?, "flush"?, "done"?}`: append text (then flush or finish the context)."""
    session = _session_for_text(request)
    gw: Gateway = request.app.state.gateway
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    context_id = body.get("context_id")
    _run(
        session,
        {"type": "text.append", "text": body.get("text"), "context_id": context_id},
        gw.settings.max_text_chars,
    )
    context_id = context_id or session.implicit_context_id
    if body.get("done"):
        _run(session, {"type": "text.done", "context_id": context_id}, gw.settings.max_text_chars)
    elif body.get("flush"):
        _run(session, {"type": "text.flush", "context_id": context_id}, gw.settings.max_text_chars)
    return JSONResponse({"session_id": session.id, "context_id": context_id})


async def post_command(request: Request) -> Response:
    session = _session_for_text(request)
    gw: Gateway = request.app.state.gateway
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    action = request.path_params["action"]
    if action not in REST_COMMANDS:
        raise ApiError(404, f"unknown session action '{action}'", code="not_found")
    before = session.interruption_count
    _run(
        session,
        {"type": REST_COMMANDS[action], "context_id": body.get("context_id")},
        gw.settings.max_text_chars,
    )
    result: dict[str, Any] = {"session_id": session.id}
    if action == "cancel":
        new = session.interruption_count - before
        result["interrupted"] = [e["context_id"] for e in list(session.interruptions)[-new:]] if new else []
    return JSONResponse(result)


async def control_socket(websocket: WebSocket) -> None:
    gw: Gateway = websocket.app.state.gateway
    await websocket.accept()
    key = extract_key(websocket.headers, websocket.query_params)
    session = gw.sessions.get(websocket.path_params["session_id"], key)
    if session is None:
        await websocket.close(code=CloseCode.POLICY, reason="no such session")
        return
    if session.text_source is not None:
        await websocket.close(
            code=CloseCode.POLICY,
            reason=f"session already takes text from its {session.text_source} connection",
        )
        return
    session.text_source = CONTROL

    async def send_event(event: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(event))

    observer = Observer(send_event, send_timeout_s=gw.settings.send_timeout_s)
    session.add_observer(observer)
    observer.offer(server_events.session_attached(session.describe()))
    watching = asyncio.create_task(observer.run())
    closed = asyncio.create_task(session.closed.wait())
    receive: asyncio.Task[Any] | None = None
    code, reason = CloseCode.NORMAL, "control socket closed"
    try:
        while True:
            receive = asyncio.create_task(websocket.receive())
            done, _ = await asyncio.wait({receive, closed, watching}, return_when=asyncio.FIRST_COMPLETED)
            if receive in done and receive.result()["type"] == "websocket.disconnect":
                return  # the agent hung up (whatever else happened meanwhile)
            if watching in done:
                code, reason = CloseCode.POLICY, f"control socket not reading its events: {watching.result()}"
                log.warning("control socket dropped", extra={"session_id": session.id, "reason": reason})
                return
            if closed in done:  # its last events first: the writer offered them before it ended
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(observer.drain(), gw.settings.send_timeout_s)
                code, reason = CloseCode.NORMAL, "session closed"
                return
            message = receive.result()
            receive = None
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("text") is None:
                    raise ClientError("invalid_frame", "the control socket takes JSON text frames only")
                command = parse_command(
                    decode_text_frame(message["text"]), max_text_chars=gw.settings.max_text_chars
                )
                if command.type == "input_audio":
                    raise ClientError("invalid_frame", "audio goes to the session's media connection")
                apply_command(session, command)
            except ClientError as exc:
                observer.offer(exc.event())
    finally:
        for task in (receive, closed, watching):
            if task is not None:
                task.cancel()
        session.remove_observer(observer)
        if session.text_source == CONTROL:
            session.text_source = None
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=close_reason(reason))


routes = [
    Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}/text", post_text, methods=["POST"]),
    Route("/v1/sessions/{session_id}/{action}", post_command, methods=["POST"]),
    WebSocketRoute("/v1/sessions/{session_id}/control", control_socket),
]
