"""One regression test per defect an attacker's probe found (each failed before its fix)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
import websockets

from tests.realtime_client import run, session
from tests.twilio_client import connected, start, stop

from .conftest import GOOD_KEY, OTHER_KEY, WRONG_KEYS, GatewayProcess, auth, problems_in

SPEECH = "/v1/audio/speech"


def post_raw(client: httpx.Client, url: str, body: str) -> httpx.Response:
    """POST a JSON text as written: `\\ud800` stays an escape (httpx would refuse to encode it)."""
    headers = {**auth(), "Content-Type": "application/json"}
    return client.post(url, content=body.encode("ascii"), headers=headers)


def pcm_seconds(client: httpx.Client, url: str, text: str) -> float:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    response = client.post(url, json=body, headers=auth(), timeout=60)
    assert response.status_code == 200, response.text
    return len(response.content) / 2 / 24000


# 1. A lone surrogate in a name: was a 500 and a dropped keep-alive connection.
@pytest.mark.parametrize(
    "body, param",
    [
        ('{"model":"tts-1","voice":"\\ud800","input":"hi"}', "voice"),
        ('{"model":"\\ud800","voice":"alloy","input":"hi"}', "model"),
        ('{"model":"tts-1","voice":{"id":"\\udfff"},"input":"hi"}', "voice"),
    ],
)
def test_a_lone_surrogate_in_a_name_is_a_400_and_the_connection_lives_on(
    gateway: GatewayProcess, body: str, param: str
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        bad = post_raw(client, SPEECH, body)
        assert bad.status_code == 400, bad.text
        error = bad.json()["error"]
        assert error["param"] == param and error["code"] == "invalid_text"
        assert "surrogate" in error["message"]
        # The same keep-alive connection serves the next request.
        good = post_raw(
            client, SPEECH, '{"model":"tts-1","voice":"alloy","input":"Still here.","response_format":"pcm"}'
        )
        assert good.status_code == 200 and len(good.content) > 4800


# 2. Text the engine cannot take: was a 200 with 0 bytes.
def test_a_nul_in_the_input_is_spoken_as_a_space_not_lost(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        with_nul = pcm_seconds(client, SPEECH, "Before\u0000after, the words are all spoken.")
        plain = pcm_seconds(client, SPEECH, "Before after, the words are all spoken.")
    assert with_nul > 1.0
    assert abs(with_nul - plain) < 0.25 * plain, (with_nul, plain)


@pytest.mark.parametrize(
    "body, code",
    [
        ('{"model":"tts-1","voice":"alloy","input":"Before\\ud800after"}', "invalid_text"),
        ('{"model":"tts-1","voice":"alloy","input":"\\u200b\\u200c\\ufeff"}', "empty_input"),
        ('{"model":"tts-1","voice":"alloy","input":"...?! --"}', "empty_input"),
    ],
)
def test_input_with_nothing_speakable_or_invalid_unicode_is_refused_up_front(
    gateway: GatewayProcess, body: str, code: str
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        response = post_raw(client, SPEECH, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["param"] == "input"


def test_every_200_carries_audio_in_every_format(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        for fmt in ("mp3", "opus", "aac", "flac", "wav", "pcm", "mulaw", "alaw"):
            for text in ("$", "7", "Hi."):
                body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt}
                response = client.post(SPEECH, json=body, headers=auth())
                assert response.status_code in (200, 400), response.text
                if response.status_code == 200:
                    assert len(response.content) > 100, (fmt, text, len(response.content))
                else:
                    assert response.json()["error"]["code"] == "no_speech"


def test_websocket_text_is_cleaned_or_refused_before_the_engine(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:
            await client.send("text.append", text="Before\u0000after.", context_id="nul")
            await client.done("nul")
            done = await client.expect("context.done", 20, context_id="nul")
            assert done["audio_ms"] > 500
            await client.ws.send('{"type":"text.append","text":"bad \\ud800 text","context_id":"sur"}')
            error = await client.expect("error", 10)
            assert error["code"] == "invalid_text" and error["context_id"] == "sur"
            assert await client.speak("Still speaking.", "after") is not None

    run(scenario())


# 3. A client that disconnects mid-upload: was two tracebacks and a 500 per socket.
def test_a_client_leaving_mid_upload_is_counted_not_logged_as_an_error(gateway: GatewayProcess) -> None:
    before_500 = gateway.metric("realtime_requests_total", status="500")
    before_499 = gateway.metric("realtime_requests_total", status="499")
    request = (
        f"POST {SPEECH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GOOD_KEY}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"in'
    ).encode()
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(request)
            time.sleep(0.02)
    deadline = time.monotonic() + 10
    while (
        gateway.metric("realtime_requests_total", status="499") < before_499 + 30
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert gateway.metric("realtime_requests_total", status="499") == before_499 + 30
    assert gateway.metric("realtime_requests_total", status="500") == before_500
    assert not problems_in(gateway.log)


# 4. Connections reset while the server sends: was "Task exception was never retrieved" each.
def test_resets_during_the_handshake_and_mid_speech_leave_no_unretrieved_task_errors(
    gateway: GatewayProcess,
) -> None:
    async def reset_after_handshake() -> None:
        ws = await websockets.connect(f"{gateway.ws_url}/v1/realtime?api_key={GOOD_KEY}")
        ws.transport.abort()

    async def reset_mid_speech() -> None:
        ws = await websockets.connect(f"{gateway.ws_url}/v1/realtime?api_key={GOOD_KEY}")
        await ws.recv()
        await ws.send(
            json.dumps({"type": "text.append", "text": "A long answer that keeps the server sending."})
        )
        await ws.send(json.dumps({"type": "text.done"}))
        await ws.recv()
        await asyncio.sleep(0.2)
        ws.transport.abort()

    async def scenario() -> None:
        for _ in range(60):
            await reset_after_handshake()
        await asyncio.gather(*(reset_mid_speech() for _ in range(10)))
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:  # still serving
            await client.speak("Fine.")

    run(scenario(), 90)
    assert not problems_in(gateway.log)


# 5. 405 without `Allow`.
def test_405_names_the_allowed_methods(gateway: GatewayProcess) -> None:
    response = httpx.put(f"{gateway.url}{SPEECH}", headers=auth())
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


# 6. API keys in the log: uvicorn's access and WebSocket lines carried `?api_key=`.
def test_no_api_key_reaches_the_log_valid_or_wrong(gateway: GatewayProcess) -> None:
    for key in (GOOD_KEY, *WRONG_KEYS):
        httpx.get(f"{gateway.url}/v1/models?api_key={key}")
        httpx.get(f"{gateway.url}/v1/models", headers=auth(key))

    async def websockets_with(key: str) -> None:
        for path in ("/v1/realtime", "/v1/telephony/twilio", "/v1/sessions/x/control"):
            name = "api%5Fkey" if path == "/v1/realtime" else "api_key"  # decoded by the server, too
            try:
                async with websockets.connect(f"{gateway.ws_url}{path}?voice=a&{name}={key}") as ws:
                    await asyncio.wait_for(ws.recv(), 2)
            except (websockets.ConnectionClosed, TimeoutError):
                pass

    for key in (GOOD_KEY, *WRONG_KEYS):
        run(websockets_with(key))
    log = gateway.log
    assert "api_key=[redacted]" in log and "api%5Fkey=[redacted]" in log, "the log shows that a key was sent"
    assert not problems_in(log)


# 7. Memory: one short non-Latin input took ~300 MB that an idle server never gave back.
def test_memory_after_a_long_or_non_latin_input_returns_when_idle(gateway: GatewayProcess) -> None:
    def settled(limit_mb: float = float("inf"), within_s: float = 20.0) -> float:
        """RSS once it is under `limit_mb` (the arena is trimmed 1 s after the engine goes idle), or
        after `within_s`, or once it has stopped falling."""
        deadline, last = time.monotonic() + within_s, gateway.rss_mb()
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = gateway.rss_mb()
            if now < limit_mb or (limit_mb == float("inf") and now >= last - 1):
                return now
            last = now
        return gateway.rss_mb()

    loaded = settled()
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        assert pcm_seconds(client, SPEECH, "مرحبا بكم في خدمة العملاء") > 10  # espeak spells every letter
        assert pcm_seconds(client, SPEECH, "7" * 1000) > 10
    grown = gateway.rss_mb()
    idle = settled(loaded + 60)
    assert idle < loaded + 60, (
        f"RSS {loaded:.0f} MB loaded, {grown:.0f} MB after the inputs, {idle:.0f} MB idle"
    )


# 8. The smaller ones.
def test_a_request_whose_headers_never_finish_is_closed(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Ty")
        sock.settimeout(5)
        started = time.monotonic()
        reply = sock.recv(1024)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert sock.recv(1024) == b""  # closed
        assert 1.0 < time.monotonic() - started < 4.0


def test_a_pipelined_request_trickling_its_headers_is_closed_after_the_response_before_it(
    gateway: GatewayProcess,
) -> None:
    """A whole request, then the next one's headers a byte at a time: the first answer arrives
    complete, then the connection is closed with 408 (the keep-alive timer alone never fired)."""
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nX-A: ")
        sock.settimeout(0.3)
        started, reply = time.monotonic(), b""
        while time.monotonic() - started < 8:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                sock.sendall(b"a")  # one more header byte
                continue
            if not chunk:
                break
            reply += chunk
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert b"HTTP/1.1 408" in reply and reply.index(b"HTTP/1.1 408") > reply.index(b'"ok"'), reply
    assert elapsed < 5, f"closed after {elapsed:.1f} s (header timeout 1.5 s)"


def test_a_silent_new_connection_is_closed(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.settimeout(5)
        assert sock.recv(1024).startswith(b"HTTP/1.1 408")


def test_a_body_that_never_finishes_is_answered_408(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            f"POST {SPEECH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GOOD_KEY}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":'.encode()
        )
        sock.settimeout(5)
        reply = b""
        while chunk := sock.recv(4096):  # until the server closes
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"body_timeout" in reply


def test_a_context_left_open_times_out_and_lets_the_next_one_speak(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:
            await client.append("First answer, never finished.", "open")
            await client.append("Second answer.", "next")
            await client.done("next")
            error = await client.expect("error", 15)
            assert error["code"] == "context_timeout" and error["context_id"] == "open"
            await client.expect("context.done", 15, context_id="open")
            done = await client.expect("context.done", 15, context_id="next")
            assert done["audio_ms"] > 300

    run(scenario())


def test_a_lone_open_context_does_not_time_out(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:
            await client.append("Speaking, more to come.", "alone")
            await client.expect("segment.done", 15, context_id="alone")
            quiet = await client.quiet(2.5)  # > the 1 s timeout: nothing waits behind it
            assert not [i for i in quiet if getattr(i, "type", None) == "error"]
            await client.append(" And here it is.", "alone")
            await client.done("alone")
            await client.expect("context.done", 15, context_id="alone")

    run(scenario())


def test_a_twilio_stream_reconnecting_at_once_with_its_session_id_is_accepted(
    gateway: GatewayProcess,
) -> None:
    refused: list[str] = []

    async def call(sid: str) -> None:
        """Twilio's own order: `stop`, then it closes the socket itself, and a restarted stream
        connects at once with the same session id."""
        url = f"{gateway.ws_url}/v1/telephony/twilio?api_key={GOOD_KEY}"
        ws = await websockets.connect(url)
        await ws.send(connected())
        await ws.send(start(sid, session_id="call-42"))
        await asyncio.sleep(0.05)
        if ws.close_code is not None:
            refused.append(ws.close_reason)
        await ws.send(stop(sid))
        await ws.close()

    async def scenario() -> None:
        for n in range(30):
            await call(f"MZ{n}")
        assert not refused, refused

    run(scenario(), 60)


def test_session_ids_are_per_key_and_reveal_nothing_to_another_key(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        ours = await websockets.connect(f"{gateway.ws_url}/v1/telephony/twilio?api_key={GOOD_KEY}")
        await ours.send(connected())
        await ours.send(start("MZours", session_id="shared-name"))
        theirs = await websockets.connect(f"{gateway.ws_url}/v1/telephony/twilio?api_key={OTHER_KEY}")
        await theirs.send(connected())
        await theirs.send(start("MZtheirs", session_id="shared-name"))
        await asyncio.sleep(0.3)
        assert theirs.close_code is None, f"refused: {theirs.close_reason}"
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            mine = (await client.get("/v1/sessions/shared-name", headers=auth(GOOD_KEY))).json()
            other = (await client.get("/v1/sessions/shared-name", headers=auth(OTHER_KEY))).json()
            assert mine["session_id"] == other["session_id"] == "shared-name"
            # Each key drives its own call: text posted with one key reaches only its session.
            posted = await client.post("/v1/sessions/shared-name/text", headers=auth(OTHER_KEY),
                                       json={"text": "For the other tenant.", "done": True})  # fmt: skip
            assert posted.status_code == 200
        for ws, sid in ((ours, "MZours"), (theirs, "MZtheirs")):
            await ws.send(stop(sid))
            await ws.close()

    run(scenario())


def test_a_voice_name_too_long_is_named_as_such(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:
            await client.send("session.update", voice="v" * 201)
            error = await client.expect("error")
            assert error["code"] == "invalid_config"
            assert "201 characters" in error["message"] and "non-empty" not in error["message"]

    run(scenario())


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini-tts-2025-12-15", "gpt-4o-mini-tts-2025-03-20", "tts-1-hd-1106"]
)
def test_openai_snapshot_model_ids_map_to_the_default_engine(gateway: GatewayProcess, model: str) -> None:
    body = {"model": model, "voice": "alloy", "input": "Snapshot.", "response_format": "pcm"}
    response = httpx.post(f"{gateway.url}{SPEECH}", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200 and len(response.content) > 4800
    assert httpx.get(f"{gateway.url}/v1/models/{model}", headers=auth()).status_code == 200
    assert httpx.get(f"{gateway.url}/v1/models/gpt-4o-mini-tts-x", headers=auth()).status_code == 404


def test_a_twilio_session_id_that_is_not_unicode_is_refused_cleanly(gateway: GatewayProcess) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"{gateway.ws_url}/v1/telephony/twilio?api_key={GOOD_KEY}") as ws:
            await ws.send(connected())
            await ws.send(
                start("MZbad", session_id="x").replace('"session_id": "x"', '"session_id": "\\ud800"')
            )
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "session_id may only hold" in ws.close_reason

    run(scenario())
    assert not problems_in(gateway.log)


def test_a_close_reason_quoting_a_long_session_id_still_fits_its_frame(gateway: GatewayProcess) -> None:
    """ "session '<128 characters>' already exists" is over the 123 bytes a close frame carries: it
    used to fail the close itself (the client saw 1006, the server logged a traceback)."""
    long_id = "a" * 128

    async def scenario() -> None:
        url = f"{gateway.ws_url}/v1/telephony/twilio?api_key={GOOD_KEY}"
        async with websockets.connect(url) as first:
            await first.send(connected())
            await first.send(start("MZfirst", session_id=long_id))
            await asyncio.sleep(0.2)
            async with websockets.connect(url) as second:
                await second.send(connected())
                await second.send(start("MZsecond", session_id=long_id))
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(second.recv(), 5)
                assert second.close_code == 1008, (second.close_code, second.close_reason)
                assert second.close_reason.endswith("...") and len(second.close_reason.encode()) <= 123
            await first.send(stop("MZfirst"))

    run(scenario())
    assert not problems_in(gateway.log)


# 9. An emoji alone: the text front end left nothing to say, no job started, and nothing woke the
#    context to finish: REST never answered (the fuzz waited out its client's timeout), a realtime
#    context never sent `context.done`.
@pytest.mark.parametrize("emoji", ["\N{GRINNING FACE}", "\N{EMOJI MODIFIER FITZPATRICK TYPE-1-2}"])
def test_an_emoji_alone_is_answered_not_left_hanging(gateway: GatewayProcess, emoji: str) -> None:
    with httpx.Client(base_url=gateway.url, timeout=15) as client:
        body = {"model": "tts-1", "voice": "alloy", "input": emoji}
        response = client.post(SPEECH, json=body, headers=auth())
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_speech", response.text

    async def scenario() -> None:
        async with session(gateway, query={"api_key": GOOD_KEY}) as client:
            assert (await client.speak(emoji, "alone", timeout=10))["audio_ms"] == 0
            await client.append("Hello there. ", "after")
            await client.expect("segment.started", 10, context_id="after")
            await client.append(emoji, "after")  # a segment of its own, after the first has started
            await client.done("after")
            assert (await client.expect("context.done", 10, context_id="after"))["audio_ms"] > 500

    run(scenario())
    assert not problems_in(gateway.log)
