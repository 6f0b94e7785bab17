"""The voice-agent page in a real headless Chromium (Debian's package), driven by Playwright.

Chromium's fake capture device plays a WAV file as the microphone: silence for
the plain tests, silence then real speech (Piper, through the gateway's REST
API) for barge-in. Screenshots land in `test-artifacts/` for people to look at.
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.audio_check import piper_speech
from tests.server import LiveServer, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SPEECH_AT_S = 3.0
"""When the fake microphone starts speaking: after the page has connected and the agent talks."""


def write_wav(path: Path, pcm: np.ndarray, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def page_server() -> Iterator[LiveServer]:
    with LiveServer(engines=["piper", "tone"]) as live:
        yield live


@pytest.fixture(scope="module")
def microphones(page_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mic")
    speech = piper_speech(page_server.url, "Wait, stop, I have a question about that.", 48000)
    caller = np.concatenate([np.zeros(int(48000 * SPEECH_AT_S), np.float32), speech,
                             np.zeros(48000 * 10, np.float32)])  # fmt: skip
    return {
        "silent": write_wav(folder / "silence.wav", np.zeros(48000, np.int16)),
        "speech": write_wav(folder / "caller.wav", (np.clip(caller, -1, 1) * 32767).astype(np.int16)),
    }


def launch(playwright, microphone: Path) -> Browser:  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
            # Real host candidates instead of mDNS names (the gateway is on loopback).
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ],  # fmt: skip
    )


@pytest.fixture
def browser_with(microphones: dict[str, Path]) -> Iterator:  # type: ignore[type-arg]
    with sync_playwright() as playwright:
        opened: list[Browser] = []

        def open_browser(mic: str = "silent") -> Browser:
            browser = launch(playwright, microphones[mic])
            opened.append(browser)
            return browser

        yield open_browser
        for browser in opened:
            browser.close()


def open_page(browser: Browser, server: LiveServer, *, width: int = 1100, height: int = 900) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/")
    page.wait_for_function("document.getElementById('voice').options.length > 0", timeout=15000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def connect(page: Page, transport: str, *, open_mic: bool = True) -> None:
    page.select_option("#transport", transport)
    page.set_checked("#open-mic", open_mic)
    page.click("#connect")
    page.wait_for_function("window.voiceApp.state !== 'connecting'", timeout=20000)
    assert page.evaluate("window.voiceApp.state") == "connected", page.text_content("#error")


def event_types(page: Page) -> list[str]:
    return page.evaluate("window.voiceApp.events.map(e => e.type)")


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert (ARTIFACTS / name).stat().st_size > 10_000


def test_page_loads_with_engine_and_voice_pickers_from_the_api(browser_with, page_server: LiveServer) -> None:
    page = open_page(browser_with(), page_server)
    engines = page.eval_on_selector_all("#engine option", "els => els.map(e => e.value)")
    assert engines == ["piper"], "the test engine is hidden when a real one is loaded"
    voices = page.eval_on_selector_all("#voice option", "els => els.map(e => e.value)")
    assert voices == [v.id for v in page_server.gateway.engines.get("piper").info.voices]
    assert page.text_content("#status") == "disconnected"
    assert not page.errors  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_llm_stream_is_heard_with_live_metrics(browser_with, page_server: LiveServer, transport: str) -> None:
    page = open_page(browser_with(), page_server)
    connect(page, transport, open_mic=False)
    page.fill("#token-rate", "40")
    page.click("#simulate")
    assert wait_for(lambda: page.evaluate("window.voiceApp.ttfaMs.length") > 0, timeout=15)
    assert wait_for(lambda: "metrics" in event_types(page), timeout=15)
    # Audio really reached the page's output: WebRTC's own receive statistics, and the meter.
    if transport == "webrtc":
        assert wait_for(
            lambda: page.evaluate("window.voiceApp.transport.clientStats().audioEnergy") > 0.01, timeout=10
        )
    assert wait_for(lambda: (page.evaluate("window.voiceApp.level") or 0) > 0.02, timeout=10)
    for field in ("m-ttfa", "m-chunk", "m-rtf", "m-engine", "m-buffer"):
        assert page.text_content(f"#{field}") != "–", field
    assert page.text_content("#m-engine").startswith("piper")
    screenshot(page, f"page-{transport}-desktop.png")
    page.click("#connect")  # disconnect
    assert wait_for(lambda: not page_server.gateway.sessions and page_server.gateway.limiter.total == 0, 10)
    assert not page.errors  # type: ignore[attr-defined]


def test_typing_streams_text_as_you_type(browser_with, page_server: LiveServer) -> None:
    page = open_page(browser_with(), page_server, width=390, height=844)  # a phone
    connect(page, "webrtc", open_mic=False)
    page.click("#text")
    page.keyboard.type("Hello from the keyboard.", delay=20)
    page.keyboard.press("Enter")
    assert wait_for(lambda: "context.done" in event_types(page), timeout=15)
    spoken = page.evaluate(
        "window.voiceApp.events.filter(e => e.type === 'segment.started').map(e => e.text).join(' ')"
    )
    assert "Hello from the keyboard." in " ".join(spoken.split())
    # Nothing overflows a phone-sized screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "page-webrtc-phone.png")


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_speaking_into_the_microphone_interrupts_the_agent(
    browser_with, page_server: LiveServer, transport: str
) -> None:
    page = open_page(browser_with("speech"), page_server)
    connect(page, transport, open_mic=True)
    page.fill("#token-rate", "60")
    page.click("#simulate")
    assert wait_for(lambda: "speech.interrupted" in event_types(page), timeout=20), event_types(page)
    types = event_types(page)
    assert types.index("vad.speech_started") < types.index("speech.interrupted")
    assert types.index("segment.started") < types.index("speech.interrupted"), "it was speaking"
    interrupted = page.evaluate("window.voiceApp.events.find(e => e.type === 'speech.interrupted')")
    assert interrupted["reason"] == "barge_in" and interrupted["sent_ms"] > 0
    screenshot(page, f"page-{transport}-barge-in.png")
    assert not page.errors  # type: ignore[attr-defined]


def test_missing_api_key_is_shown_clearly(browser_with) -> None:
    with LiveServer(engines=["tone"], api_keys=["secret"]) as live:
        page = browser_with().new_page()
        page.goto(f"{live.url}/")
        assert wait_for(lambda: "API key" in (page.text_content("#error") or ""), timeout=10)
        page.fill("#api-key", "secret")
        page.dispatch_event("#api-key", "change")
        page.wait_for_function("document.getElementById('voice').options.length > 0", timeout=10000)
        connect(page, "webrtc", open_mic=False)
        page.click("#simulate")
        assert wait_for(lambda: "segment.started" in event_types(page), timeout=15)
