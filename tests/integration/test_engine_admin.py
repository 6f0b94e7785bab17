"""Engines managed at run time (`/v1/engines`), hot settings (`/v1/config`), admin keys, and what the
public listings show meanwhile; memory given back by an unload; sessions speaking through it all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.realtime_client import RealtimeClient, run, session
from tests.server import LiveServer, wait_for

ROOT = {"Authorization": "Bearer root"}
USER = {"Authorization": "Bearer user"}


@pytest.fixture(scope="module")
def admin_server() -> Iterator[LiveServer]:
    """Two tone engines, no keys: the admin routes are open as every other route is."""
    with LiveServer(engines=["tone"], drain_timeout_s=20.0) as live:
        yield live


def engines(server: LiveServer, **kw: Any) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{server.url}/v1/engines", **kw).json()
    return {e["name"]: e for e in body["data"]}


def state(server: LiveServer, name: str) -> str:
    return str(engines(server)[name]["state"])


def models(server: LiveServer) -> set[str]:
    return {m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}


def speak(server: LiveServer, model: str = "tts-1", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": model, "voice": "alloy", "input": "Short test.", "response_format": "pcm", **body},
        timeout=30,
    )


def test_engines_are_listed_with_state_capabilities_voices_and_speed(admin_server: LiveServer) -> None:
    assert speak(admin_server, "tone").status_code == 200
    body = httpx.get(f"{admin_server.url}/v1/engines").json()
    assert body["default_engine"] == "tone" and body["rss_mb"] > 10
    (tone,) = [e for e in body["data"] if e["name"] == "tone"]
    assert tone["state"] == "ready" and tone["error"] is None and tone["degraded"] is False
    assert tone["engine"] == "tone" and tone["device"] == "cpu" and tone["default"] is True
    assert tone["voices"] == ["low", "mid", "high"] and tone["capabilities"]["streaming"] == "chunk"
    assert tone["queue_depth"] == 0 and tone["recent_speed"] > 1 and tone["contexts"] == 0
    assert tone["capacity"] == admin_server.gateway.engines.get("tone").capacity >= 1
    assert httpx.get(f"{admin_server.url}/v1/engines/tone").json()["name"] == "tone"
    missing = httpx.get(f"{admin_server.url}/v1/engines/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "engine_not_found"


def test_an_engine_added_loaded_and_unloaded_shows_in_the_listings_as_it_goes(
    admin_server: LiveServer,
) -> None:
    url = admin_server.url
    put = httpx.put(
        f"{url}/v1/engines/tone-b", json={"engine": "tone", "settings": {"speed": 30, "load_delay_s": 0.3}}
    )
    assert put.status_code == 201 and put.json()["state"] == "unloaded"
    assert "tone-b" not in models(admin_server)
    load = httpx.post(f"{url}/v1/engines/tone-b/load")
    assert load.status_code == 202 and load.json()["state"] == "loading"
    started = time.monotonic()
    assert httpx.get(f"{url}/health").status_code == 200, "a load does not block the event loop"
    assert time.monotonic() - started < 0.2
    refused = speak(admin_server, "tone-b")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "engine_not_ready"
    assert "loading" in refused.json()["error"]["message"]
    assert wait_for(lambda: state(admin_server, "tone-b") == "ready", 10)
    assert "tone-b" in models(admin_server)
    assert speak(admin_server, "tone-b").headers["x-engine"] == "tone-b"
    voices = httpx.get(f"{url}/v1/audio/voices", params={"model": "tone-b"}).json()["voices"]
    assert {v["id"] for v in voices} == {"low", "mid", "high"}
    unload = httpx.post(f"{url}/v1/engines/tone-b/unload")
    assert unload.status_code == 202 and unload.json()["state"] in ("draining", "unloaded")
    assert wait_for(lambda: state(admin_server, "tone-b") == "unloaded", 10)
    assert "tone-b" not in models(admin_server)
    gone = speak(admin_server, "tone-b")
    assert gone.status_code == 503 and "is not loaded" in gone.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/models/tone-b").status_code == 404
    bad = httpx.put(f"{url}/v1/engines/tone-c", json={"engine": "tone", "settings": {"speed": -1}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "settings.speed"
    kind = httpx.put(f"{url}/v1/engines/tone-c", json={"engine": "kokoro-9000"})
    assert kind.status_code == 400 and kind.json()["error"]["param"] == "engine"
    assert httpx.put(f"{url}/v1/engines/tts-1", json={"engine": "tone"}).status_code == 400


def test_hot_settings_apply_to_new_requests_and_cold_ones_are_refused(admin_server: LiveServer) -> None:
    url = admin_server.url
    config = httpx.get(f"{url}/v1/config").json()
    assert config["hot"]["default_engine"] == "tone" and "planner" in config["hot_fields"]
    assert config["settings"]["api_keys"] == "[0 configured]"
    httpx.put(f"{url}/v1/engines/tone-d", json={"engine": "tone", "load": True})
    assert wait_for(lambda: state(admin_server, "tone-d") == "ready", 10)
    patched = httpx.patch(
        f"{url}/v1/config", json={"default_engine": "tone-d", "planner": {"first_max_chars": 12}}
    )
    assert patched.status_code == 200 and patched.json()["hot"]["default_engine"] == "tone-d"
    assert patched.json()["hot"]["planner"]["first_max_chars"] == 12
    assert speak(admin_server).headers["x-engine"] == "tone-d", "tts-1 means the new default"
    assert engines(admin_server)["tone-d"]["default"] is True
    cold = httpx.patch(f"{url}/v1/config", json={"port": 1})
    assert cold.status_code == 400 and cold.json()["error"]["code"] == "not_hot"
    invalid = httpx.patch(f"{url}/v1/config", json={"planner": {"growth": 0.1}})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "planner.growth"
    assert httpx.patch(f"{url}/v1/config", json={"default_engine": "tone"}).status_code == 200
    chained = httpx.put(f"{url}/v1/engines/tone-d", json={"fallbacks": ["tone"]})
    assert chained.status_code == 200 and chained.json()["fallbacks"] == ["tone"]
    assert httpx.get(f"{url}/v1/config").json()["hot"]["failover"]["fallbacks"] == {"tone-d": ["tone"]}
    assert httpx.put(f"{url}/v1/engines/tone-d", json={"fallbacks": ["nope"]}).status_code == 400


def test_admin_routes_need_an_admin_key_once_keys_are_configured() -> None:
    with LiveServer(engines=["tone"], api_keys=["user"], admin_keys=["root"]) as live:
        none = httpx.get(f"{live.url}/v1/engines")
        assert none.status_code == 401
        regular = httpx.get(f"{live.url}/v1/engines", headers=USER)
        assert regular.status_code == 403 and regular.json()["error"]["code"] == "admin_key_required"
        assert httpx.patch(f"{live.url}/v1/config", headers=USER, json={}).status_code == 403
        assert httpx.post(f"{live.url}/v1/engines/tone/unload", headers=USER).status_code == 403
        assert httpx.get(f"{live.url}/v1/engines", headers=ROOT).status_code == 200
        assert httpx.get(f"{live.url}/v1/engines", params={"api_key": "root"}).status_code == 200
        ok = httpx.post(
            f"{live.url}/v1/audio/speech", headers=ROOT,
            json={"model": "tone", "voice": "mid", "input": "Admin keys work here too.", "response_format": "pcm"},
        )  # fmt: skip
        assert ok.status_code == 200
        assert (
            httpx.get(f"{live.url}/v1/config", headers=ROOT).json()["settings"]["admin_keys"]
            == "[1 configured]"
        )
    with LiveServer(engines=["tone"], admin_keys=["root"]) as live:
        assert httpx.get(f"{live.url}/v1/models").status_code == 200, "no api_keys: the public API stays open"
        assert httpx.get(f"{live.url}/v1/engines").status_code == 401
        assert httpx.get(f"{live.url}/v1/engines", headers=ROOT).status_code == 200


def test_unloading_piper_gives_its_memory_back() -> None:
    with LiveServer(engines=["tone", "piper"], piper={"workers": 1}) as live:
        assert speak(live, "piper", input="Warm the arena with a sentence of some length.").status_code == 200
        loaded = httpx.get(f"{live.url}/v1/engines").json()["rss_mb"]
        assert httpx.post(f"{live.url}/v1/engines/piper/unload").status_code == 202
        assert wait_for(lambda: state(live, "piper") == "unloaded", 20)
        unloaded = httpx.get(f"{live.url}/v1/engines").json()["rss_mb"]
        assert httpx.post(f"{live.url}/v1/engines/piper/load").status_code == 202
        assert wait_for(lambda: state(live, "piper") == "ready", 30)
        reloaded = httpx.get(f"{live.url}/v1/engines").json()["rss_mb"]
        print(f"RSS with Piper {loaded:.0f} MB, unloaded {unloaded:.0f} MB, reloaded {reloaded:.0f} MB")
        # The embedded voice's model, its ONNX Runtime arena and espeak data: ~100 MB here.
        assert loaded - unloaded > 50, (loaded, unloaded)
        assert reloaded - unloaded > 30, (unloaded, reloaded)
        assert speak(live, "piper").status_code == 200


TEXTS = [
    "One answer goes on, clause after clause, while the engines around it change.",
    "Then another one follows, with a few more words, to keep every session busy.",
    "And a last one closes the turn, slowly, so that it is still speaking at the end.",
]


async def _talk(client: RealtimeClient, rounds: int) -> list[float]:
    """Speak `rounds` × the three texts; returns each context's largest gap between audio frames."""
    gaps: list[float] = []
    for n in range(rounds):
        for k, text in enumerate(TEXTS):
            cid = f"c{n}-{k}"
            await client.append(text, cid)
            await client.done(cid)
            await client.expect("context.done", 30, context_id=cid)
            times = [i.at for i in client.items if hasattr(i, "data") and i.context_id == cid]  # type: ignore[union-attr]
            gaps.append(max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else 0.0)
    return gaps


def test_four_sessions_speak_through_load_swap_unload_and_reload_without_an_error_or_a_stall() -> None:
    """Contexts on an engine being unloaded finish there (draining); later ones go to the new default."""

    async def main(live: LiveServer) -> None:
        url = live.url
        async with (
            session(live, query={"voice": "mid"}) as a, session(live, query={"voice": "mid"}) as b,
            session(live, query={"voice": "mid"}) as c, session(live, query={"voice": "mid"}) as d,
        ):  # fmt: skip
            for client in (a, b, c, d):
                await client.update(metrics=True)
            talking = asyncio.gather(*(_talk(x, 2) for x in (a, b, c, d)))

            async def admin() -> None:
                async with httpx.AsyncClient(base_url=url) as http:
                    put = {"engine": "tone", "settings": {"speed": 20}, "load": True}
                    assert (await http.put("/v1/engines/tone-b", json=put)).status_code == 201
                    await _until_state(http, "tone-b", "ready")
                    assert (
                        await http.patch("/v1/config", json={"default_engine": "tone-b"})
                    ).status_code == 200
                    assert (await http.post("/v1/engines/tone/unload")).status_code == 202
                    await _until_state(http, "tone", "unloaded")
                    assert (await http.post("/v1/engines/tone/load")).status_code == 202
                    await _until_state(http, "tone", "ready")
                    assert (
                        await http.patch("/v1/config", json={"default_engine": "tone"})
                    ).status_code == 200
                    assert (await http.post("/v1/engines/tone-b/unload")).status_code == 202
                    await _until_state(http, "tone-b", "unloaded")

            gaps, _ = await asyncio.gather(talking, admin())
            for client in (a, b, c, d):
                assert client.events("error") == [], client.events("error")
                assert len(client.events("context.done")) == 2 * len(TEXTS)
                for event in client.events("context.done"):
                    cid = event["context_id"]
                    said = " ".join(s["text"] for s in client.events("segment.started", context_id=cid))
                    assert said == TEXTS[int(cid[-1])], "every word said once, in order"
            used = {e["engine"] for x in (a, b, c, d) for e in x.events("metrics")}
            assert used == {"tone", "tone-b"}, "contexts moved to the new default, and back"
            # Paced at real time with a 300 ms lead: a stall is a frame arriving far later than the one before.
            assert max(g for per in gaps for g in per) < 0.5, gaps

    # 20 ms a character (not the default 60): each context speaks ~1.5 s, not ~4.5 s; the admin steps
    # still land mid-context (tone drains c0-0, tone-b drains c0-1) and frames are paced as before.
    with LiveServer(engines=["tone"], tone={"speed": 8.0, "ms_per_char": 20.0}, drain_timeout_s=20.0) as live:
        run(main(live), timeout=120)
        assert engines(live)["tone"]["contexts"] == 0


async def _until_state(http: httpx.AsyncClient, name: str, wanted: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await http.get(f"/v1/engines/{name}")).json()["state"] == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became {wanted}")
