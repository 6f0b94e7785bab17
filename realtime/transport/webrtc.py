"""WebRTC signalling: `POST /v1/webrtc/offer`, trickle ICE by `PATCH`, hang-up by `DELETE`.

The offer/answer shape is pipecat's SmallWebRTC one (`{sdp, type, pc_id}`), so
its clients connect unchanged. The answer carries every server candidate
(aiortc gathers before answering); clients may trickle theirs with
`PATCH /v1/webrtc/offer` `{pc_id, candidates: [{candidate, sdpMid, sdpMLineIndex}]}`.
A `session` object in the offer (or `?engine=&voice=`) presets the session,
as `session.update` would. Auth and session limits are those of `/v1/realtime`.
The transport runtime (`runtime.py`) opens, serves and closes the session; this file
is signalling, and `webrtc_peer.py` the carriage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from contextlib import ExitStack
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..control.auth import extract_key
from ..gateway import Gateway
from .errors import ApiError
from .json_body import read_json_object
from .realtime_protocol import query_patch
from .runtime import Opening, Refused, SessionRuntime
from .webrtc_peer import FRAME_MS, LEAD_MS, SAMPLE_RATE, WebRtcConnection, WebRtcPeer

log = logging.getLogger(__name__)

TRANSPORT = "webrtc"
MAX_SDP_BYTES = 64 * 1024
MAX_CANDIDATES = 64


class WebRtcPeers:
    """The open peer connections of this process, by `pc_id`."""

    def __init__(self) -> None:
        self.peers: dict[str, WebRtcPeer] = {}
        self._runners: set[asyncio.Task[None]] = set()

    def start(self, peer: WebRtcPeer, stack: ExitStack) -> None:
        """Serve `peer`'s session once it connects; `stack` holds its slot until it ends."""
        self.peers[peer.id] = peer
        task = asyncio.get_running_loop().create_task(self._run(peer, stack))
        self._runners.add(task)
        task.add_done_callback(self._runners.discard)

    async def _run(self, peer: WebRtcPeer, stack: ExitStack) -> None:
        try:
            if await peer.wait_connected():
                await peer.runtime.serve(peer.session, WebRtcConnection(peer), peer.receive)
            else:
                log.info("webrtc peer never connected", extra={"pc_id": peer.id})
        except Exception:
            log.exception("webrtc peer failed", extra={"pc_id": peer.id})
        finally:
            peer.session.shutdown()
            await peer.close()
            stack.close()
            self.peers.pop(peer.id, None)

    def find(self, pc_id: object, key: str | None, gw: Gateway) -> WebRtcPeer:
        peer = self.peers.get(pc_id) if isinstance(pc_id, str) else None
        if peer is None or (gw.auth.enabled and peer.api_key != key):
            raise ApiError(404, f"no open peer connection '{pc_id}'", param="pc_id", code="peer_not_found")
        return peer

    async def close_all(self) -> None:
        for peer in list(self.peers.values()):
            await peer.close()
        for task in list(self._runners):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)


def peers_of(request: Request) -> WebRtcPeers:
    return request.app.state.webrtc_peers  # type: ignore[no-any-return]


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{name}' must be a non-empty string.", param=name, code="invalid_field")
    return value


def _refusal(refused: Refused) -> ApiError:
    if refused.code == "too_many_sessions":
        return ApiError(429, refused.message, code=refused.code)
    param = None if refused.param is None else f"session.{refused.param}"
    return ApiError(400, refused.message, param=param, code=refused.code)


def _session_patch(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    patch = query_patch(request.query_params)
    extra = body.get("session")
    if extra is not None and not isinstance(extra, dict):
        raise ApiError(400, "'session' must be an object.", param="session", code="invalid_field")
    patch.update(extra or {})
    # The track's format is fixed by WebRTC: 48 kHz PCM in 20 ms frames, queued LEAD_MS ahead.
    patch["output"] = {
        "encoding": "pcm",
        "sample_rate": SAMPLE_RATE,
        "frame_ms": FRAME_MS,
        "lead_ms": LEAD_MS,
    }
    return patch


async def offer(request: Request) -> Response:
    runtime = SessionRuntime.of(request.app)
    body = await read_json_object(request, max_bytes=MAX_SDP_BYTES, timeout_s=runtime.settings.body_timeout_s)
    sdp = _string(body, "sdp")
    if body.get("type", "offer") != "offer":
        raise ApiError(400, "'type' must be 'offer'.", param="type", code="invalid_field")
    if body.get("pc_id") is not None:
        raise ApiError(400, "Renegotiation is not supported: open a new peer connection.", param="pc_id",
                       code="renegotiation_unsupported")  # fmt: skip
    key = extract_key(request.headers, request.query_params)
    stack = ExitStack()  # the session slot, held by the peer's runner from here on
    try:
        stack.enter_context(runtime.slot(key))
        session = runtime.open(
            Opening(TRANSPORT, key, preset=lambda: _session_patch(request, body), text_source=TRANSPORT)
        )
    except Refused as exc:
        stack.close()
        raise _refusal(exc) from None
    except BaseException:
        stack.close()
        raise
    peer = WebRtcPeer(runtime, session, f"pc_{secrets.token_urlsafe(16)}", key)
    try:
        answer_sdp = await peer.answer(sdp)
    except Exception as exc:  # aiortc raises ValueError and others on SDP it cannot use
        await peer.close()
        stack.close()
        log.info("webrtc offer rejected", extra={"error": str(exc)})
        raise ApiError(
            400, f"The SDP offer could not be used: {exc}", param="sdp", code="invalid_sdp"
        ) from None
    peers_of(request).start(peer, stack)
    return JSONResponse({"sdp": answer_sdp, "type": "answer", "pc_id": peer.id, "session_id": session.id})


async def add_candidates(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    body = await read_json_object(request, max_bytes=MAX_SDP_BYTES, timeout_s=gw.settings.body_timeout_s)
    peer = peers_of(request).find(body.get("pc_id"), extract_key(request.headers, request.query_params), gw)
    candidates = body.get("candidates")
    if candidates is None and "candidate" in body:
        candidates = [body]
    if not isinstance(candidates, list) or len(candidates) > MAX_CANDIDATES:
        raise ApiError(400, f"'candidates' must be a list of at most {MAX_CANDIDATES} objects.",
                       param="candidates", code="invalid_field")  # fmt: skip
    for item in candidates:
        if not isinstance(item, dict) or not isinstance(item.get("candidate", ""), str):
            raise ApiError(400, "each candidate needs a string 'candidate'.", param="candidates",
                           code="invalid_field")  # fmt: skip
        mid = item.get("sdpMid", item.get("sdp_mid"))
        index = item.get("sdpMLineIndex", item.get("sdp_mline_index"))
        try:
            await peer.add_candidate(item.get("candidate", ""), mid, index)
        except Exception as exc:
            raise ApiError(
                400, f"bad ICE candidate: {exc}", param="candidates", code="invalid_candidate"
            ) from None
    return Response(status_code=204)


async def hang_up(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    peer = peers_of(request).find(
        request.path_params["pc_id"], extract_key(request.headers, request.query_params), gw
    )
    await peer.close()
    return Response(status_code=204)


routes = [
    Route("/v1/webrtc/offer", offer, methods=["POST"]),
    Route("/v1/webrtc/offer", add_candidates, methods=["PATCH"]),
    Route("/v1/webrtc/{pc_id}", hang_up, methods=["DELETE"]),
]
