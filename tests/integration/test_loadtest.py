"""The load tester (`python -m loadtest` and its library API) against a real server with the tone engine.

The tone engine makes 60 ms of audio per character; the server drops the space at
each segment seam and each seam's crossfade shortens the audio by 5 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from loadtest import bench_engine, cli, report
from loadtest.bench_scheduler import tone_env
from loadtest.common import CoreSplit, ServerProcess, capacity_between, engine_counters, pinned, usable_cpus
from loadtest.report import FrameTrace
from loadtest.rest_load import run_rest_load
from loadtest.sessions import run_ws_load
from loadtest.tokens import DEFAULT_PARAGRAPHS, clause_boundary, tokenize
from loadtest.twilio_load import run_twilio_load
from tests.server import LiveServer

MS_PER_CHAR_S = 0.06
SEAM_S = 0.005
PARAGRAPHS = ["Sure, that works for me. See you soon.", "Okay, done! Next one, please."]
REST_TEXT = "Sure, here is the plan. First we measure, then we decide, and finally we ship it to everyone."
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tone_server() -> Iterator[LiveServer]:
    with LiveServer(engines=["tone"]) as live:
        yield live


def test_tokens_are_llm_like() -> None:
    rng = random.Random(1)
    for paragraph in DEFAULT_PARAGRAPHS:
        tokens = tokenize(paragraph, rng)
        assert "".join(tokens) == paragraph
        assert all(1 <= len(t) <= 6 for t in tokens)
        assert not any(t.endswith(" ") for t in tokens), "spaces start tokens"
    tokens = tokenize("Sure, I can help.", rng)
    i = clause_boundary(tokens)
    assert i is not None and "".join(tokens[:i]) == "Sure," and tokens[i].startswith(" ")
    assert clause_boundary(tokenize("no clause here", rng)) is None


def test_underrun_rule() -> None:
    trace = FrameTrace(bytes_per_second=1000.0)  # 20 bytes = 20 ms
    # Due at 0, 20, 40, 60 ms; the 4th is 40 ms late (a stall), so the 5th is due at 80 + 40 ms.
    for t in (0.0, 0.0, 0.040, 0.100, 0.121):
        trace.add(t, 20)
    assert trace.underruns() == (1, pytest.approx(40.0))
    assert trace.jitter_ms()[0] == pytest.approx(20.0)
    assert trace.audio_between(0.0, 0.1) == pytest.approx(0.06)  # arrivals at 0, 0, 40 ms; 100 ms is out


def test_capacity_between_counter_readings() -> None:
    before = {"audio_seconds": 10.0, "cpu_seconds": 1.0}
    after = {"audio_seconds": 40.0, "cpu_seconds": 4.0}
    assert capacity_between(before, after, cores=2) == pytest.approx(20.0)  # 10 s of audio per CPU s, 2 cores
    assert capacity_between(after, after, cores=2) is None, "no work, no measurement"


def test_core_split_gives_the_load_generator_cpus_of_its_own() -> None:
    cpus = usable_cpus()
    shared = CoreSplit.shared()
    assert shared.is_shared and shared.server == frozenset(cpus)
    assert CoreSplit.isolated(0) == shared, "0 CPUs of its own: the generator shares them all"
    for impossible in (-1, len(cpus)):
        with pytest.raises(ValueError, match="cannot give the load generator"):
            CoreSplit.isolated(impossible)
    if len(cpus) > 1:
        split = CoreSplit.isolated(1)
        assert split.loadgen == {cpus[0]} and split.server == frozenset(cpus[1:]) and not split.is_shared
        assert "server on CPUs" in split.describe()


def test_pinned_server_runs_on_its_cpus_only_and_the_caller_is_restored() -> None:
    import os

    before = os.sched_getaffinity(0)
    last = frozenset({usable_cpus()[-1]})
    with pinned(last):
        assert os.sched_getaffinity(0) == last
    assert os.sched_getaffinity(0) == before
    with ServerProcess(env=tone_env(workers=1, speed=50.0), cpus=last) as server:
        assert os.sched_getaffinity(0) == before, "the bench process is not left pinned"
        threads = os.listdir(f"/proc/{server.proc.pid}/task")
        assert len(threads) > 1 and all(os.sched_getaffinity(int(t)) == last for t in threads)
        voices = httpx.get(f"{server.url}/v1/audio/voices", timeout=10)
        assert voices.status_code == 200 and "tone" in voices.text


def test_ws_mode(tone_server: LiveServer, tmp_path: Path) -> None:
    before = engine_counters(tone_server.url, "tone")
    result = asyncio.run(
        run_ws_load(tone_server.url, sessions=2, duration_s=3.0, tokens_per_second=60, engine="tone",
                    paragraphs=PARAGRAPHS, lead_ms=300)
    )  # fmt: skip
    assert len(result.sessions) == 2
    assert result.errors == 0, [s.errors for s in result.sessions]
    for session in result.sessions:
        assert session.close_code == 1000
        assert session.contexts, "at least one turn"
        for ctx in session.contexts:
            assert ctx.ttfa_ms is not None and ctx.ttfa_ms < 2000, ctx.context_id
            assert ctx.context_done_at is not None
            seams = ctx.segments - 1
            assert 0 <= ctx.chars_sent - ctx.segment_chars <= seams  # only the space at a seam is dropped
            expected = MS_PER_CHAR_S * ctx.segment_chars
            assert expected - 2 * SEAM_S * seams - 0.005 <= ctx.trace.audio_s <= expected + 0.005, (
                ctx.summary(0)
            )
        row = session.row()
        assert row.rtf is not None and 0.7 < row.rtf < 1.5, "paced at real time with lead_ms=300"
        assert row.jitter_ms
    window = result.steady_window(settle_s=1.0)
    assert window is not None and window[1] - window[0] == pytest.approx(2.0, abs=0.2)
    rate = result.steady_audio_rate(settle_s=1.0)
    assert rate is not None and 0.8 < rate < 2.5, "two sessions speak at about real time each"
    after = engine_counters(tone_server.url, "tone")
    received = sum(c.trace.audio_s for s in result.sessions for c in s.contexts)
    assert after["audio_seconds"] - before["audio_seconds"] == pytest.approx(received, rel=0.05)
    assert after["cpu_seconds"] >= before["cpu_seconds"]
    path = tmp_path / "ws.json"
    report.write_json(path, result.to_json())
    data = json.loads(path.read_text())
    assert data["mode"] == "ws" and len(data["sessions"]) == 2
    assert data["aggregate"]["items"] == sum(len(s.contexts) for s in result.sessions)


def test_rest_mode(tone_server: LiveServer) -> None:
    result = asyncio.run(
        run_rest_load(tone_server.url, clients=2, duration_s=2.0, engine="tone", voice="mid", text=REST_TEXT)
    )
    assert result.errors == 0, [c.errors for c in result.clients]
    requests = [r for c in result.clients for r in c.requests]
    assert len(requests) >= 2
    nominal = MS_PER_CHAR_S * len(REST_TEXT)
    for r in requests:
        assert r.status == 200 and r.ttfa_ms is not None and r.total_ms is not None
        assert nominal - 6 * (MS_PER_CHAR_S + SEAM_S) <= r.trace.audio_s <= nominal, r.trace.audio_s


def test_twilio_mode(tone_server: LiveServer) -> None:
    result = asyncio.run(
        run_twilio_load(tone_server.url, calls=2, duration_s=2.0, engine="tone", paragraphs=PARAGRAPHS)
    )
    assert result.errors == 0, [c.errors for c in result.calls]
    for call in result.calls:
        assert call.utterances and call.marks_matched == len(call.utterances)
        assert call.bad_frames == 0 and call.close_code == 1000
        for u in call.utterances:
            assert u.ttfa_ms is not None and u.ttfa_ms < 2000
            nominal = MS_PER_CHAR_S * u.chars  # plus at most one 20 ms frame of padding
            assert nominal - 3 * (MS_PER_CHAR_S + SEAM_S) <= u.trace.audio_s <= nominal + 0.02, (
                u.trace.audio_s
            )
            assert u.trace.jitter_ms() and max(u.trace.jitter_ms()) < 200


def test_cli_subprocess_writes_json_and_exits_0(tone_server: LiveServer, tmp_path: Path) -> None:
    text_file = tmp_path / "paragraphs.txt"
    text_file.write_text("\n\n".join(PARAGRAPHS))
    out = tmp_path / "out.json"
    ws_url = tone_server.url.replace("http://", "ws://")
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "--url", ws_url, "--mode", "ws", "--sessions", "2", "--duration", "1.5",
         "--tokens-per-second", "60", "--engine", "tone", "--lead-ms", "0", "--text-file", str(text_file),
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| **all** |" in proc.stdout
    data = json.loads(out.read_text())
    assert [s["errors"] for s in data["sessions"]] == [[], []]
    assert all(c["ttfa_ms"] is not None for s in data["sessions"] for c in s["contexts"])


def test_cli_exits_1_on_session_errors(tone_server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["--url", tone_server.url, "--mode", "ws", "--duration", "0.5", "--voice", "no-such-voice"]
    )
    assert code == 1
    assert "| ws-0 |" in capsys.readouterr().out


def test_chunk_cost_texts_and_silence_edges() -> None:
    chunks = bench_engine.word_chunks(20, 3)
    assert len(set(chunks)) == 3
    assert all(len(c) >= 20 and not any(p in c for p in ".,") for c in chunks), chunks
    audio = np.zeros(1000, np.float32)
    audio[100:900] = 0.5
    assert bench_engine.edge_silence_s(audio, 1000) == pytest.approx(0.2, abs=0.002)
    assert bench_engine.edge_silence_s(np.zeros(500, np.float32), 1000) == 0.5


def test_chunk_costs_run_the_real_engine() -> None:
    costs = asyncio.run(bench_engine.chunk_costs([5, 40], rounds=1, jobs=2))
    assert set(costs) == {5, 40}
    assert costs[40]["audio_per_chunk_s"] > costs[5]["audio_per_chunk_s"] > 0
    assert all(c["audio_per_cpu_s"] > 0 and 0 < c["silence_per_chunk_s"] < 1 for c in costs.values())
