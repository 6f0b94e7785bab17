"""Orpheus token generators on a tiny random GGUF: in-process batched llama.cpp and a remote server.

The local generator must only ever yield codes valid for their frame position,
end at frame boundaries, be reproducible with a seed (alone or batched with
others), and free a sequence's slot and KV cells on cancel. The remote one is
checked against a real OpenAI-compatible server (`python -m llama_cpp.server`)
serving the same tiny model.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import llama_cpp  # noqa: E402
import numpy as np
import pytest

from loadtest.common import free_port
from realtime.engines.base import EngineError
from realtime.engines.orpheus import codes
from realtime.engines.orpheus.llm import GenerationRequest, TokenGenerator
from realtime.engines.orpheus.llm_local import LlamaCppGenerator, sample_index
from realtime.engines.orpheus.llm_remote import RemoteCompletionsGenerator
from tests.gguf_models import llama_server, write_tiny_orpheus_gguf  # noqa: E402

TEXTS = (
    "Hello there, how are you?",
    "Hi",
    "The cat sat on the mat, and then it went away.",
    "Okay, so what?",
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def prompt(i: int = 0) -> str:
    return codes.format_prompt(TEXTS[i % len(TEXTS)], "tara")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`plain` rarely ends on its own (long sequences); `ending` ends after a few frames.

    Both follow the frame cycle (frame_bias), so an unconstrained server emits valid
    frames too; f32 weights keep batched logits bit-identical to solo ones on CPU.
    """
    folder = tmp_path_factory.mktemp("gguf")
    common = {"frame_bias": 2.0, "weight_type": "f32"}
    return {
        "plain": write_tiny_orpheus_gguf(folder / "plain.gguf", seed=1, end_row_scale=0.0, **common),
        "ending": write_tiny_orpheus_gguf(folder / "ending.gguf", seed=1, end_row_scale=6.0, **common),
    }


@pytest.fixture(scope="module")
def plain(models: dict[str, Path]) -> Iterator[LlamaCppGenerator]:
    # f32 KV and no flash attention: CPU results then do not depend on what else is in the batch.
    generator = LlamaCppGenerator(
        models["plain"], n_ctx=4096, max_sequences=4, n_threads=1, flash_attn=False, kv_cache_type="f32"
    )
    run(generator.start())
    yield generator
    run(generator.stop())


async def collect(generator: TokenGenerator, request: GenerationRequest) -> list[int]:
    return [n async for n in generator.generate(request)]


def assert_valid_stream(numbers: list[int]) -> None:
    for i, n in enumerate(numbers):
        assert n in codes.position_range(i), f"token {i} = {n} outside position {i % 7}"


async def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# -- the fixture model -----------------------------------------------------------------------------------------


def test_tiny_gguf_loads_and_prompt_custom_tokens_are_single_tokens(models: dict[str, Path]) -> None:
    started = time.perf_counter()
    llm = llama_cpp.Llama(str(models["plain"]), n_ctx=256, verbose=False)
    load_s = time.perf_counter() - started
    text = prompt(0)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    pieces = [llm.detokenize([t], special=True).decode() for t in tokens]
    assert pieces[0] == "<custom_token_3>" and pieces[1] == "<|begin_of_text|>"
    assert pieces[-4:] == ["<|eot_id|>", "<custom_token_4>", "<custom_token_5>", "<custom_token_1>"]
    assert "".join(pieces) == text
    # What a server prints: user-defined custom tokens as text, control tokens not at all.
    code = llm.tokenize(b"<custom_token_28000>", add_bos=False, special=False)
    assert len(code) == 1 and llm.detokenize(code).decode() == "<custom_token_28000>"
    assert llm.detokenize([tokens[1]]) == b""
    assert llm.n_vocab() > codes.CODE_OFFSET + 7 * codes.CODEBOOK_SIZE
    assert load_s < 5 and models["plain"].stat().st_size < 20_000_000


# -- local generator -------------------------------------------------------------------------------------------


def test_sampling_is_masked_and_reproducible() -> None:
    logits = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    picks = [sample_index(logits, np.random.default_rng(5), temperature=0.6, top_p=0.8) for _ in range(2)]
    assert picks[0] == picks[1] and 0 <= picks[0] < 4096
    assert sample_index(logits, np.random.default_rng(0), temperature=0, top_p=1.0) == int(np.argmax(logits))
    best = int(np.argmax(logits))
    penalized = sample_index(
        logits,
        np.random.default_rng(0),
        temperature=0,
        top_p=1.0,
        penalized=np.array([best]),
        repetition_penalty=100.0,
    )
    assert penalized != best


def test_local_tokens_stay_in_range_and_end_only_at_frame_boundaries(models: dict[str, Path]) -> None:
    async def main() -> tuple[list[list[int]], dict[str, int]]:
        generator = LlamaCppGenerator(models["ending"], n_ctx=4096, max_sequences=4, n_threads=1)
        await generator.start()
        try:
            requests = [
                GenerationRequest(prompt(i), max_tokens=500, seed=i, temperature=1.0, top_p=1.0)
                for i in range(8)
            ]
            streams = await asyncio.gather(*(collect(generator, r) for r in requests))
            return streams, generator.stats.snapshot()
        finally:
            await generator.stop()

    streams, stats = run(main())
    ended_early = [s for s in streams if len(s) < 500]
    assert ended_early, [len(s) for s in streams]
    for stream in streams:
        assert_valid_stream(stream)
    assert all(len(s) % codes.FRAME_TOKENS == 0 for s in ended_early)
    assert stats["sequences_completed"] == 8 and stats["tokens_generated"] == sum(map(len, streams))
    assert stats["dropped_tokens"] == 0


def test_local_seeded_generation_is_reproducible(plain: LlamaCppGenerator) -> None:
    async def main() -> list[list[int]]:
        return [await collect(plain, GenerationRequest(prompt(0), max_tokens=70, seed=s)) for s in (7, 7, 8)]

    assert isinstance(plain, TokenGenerator) and plain.ready
    first, again, other = run(main())
    assert len(first) == 70 and first == again and first != other
    assert_valid_stream(first)


def test_local_batched_sequences_equal_their_solo_runs(plain: LlamaCppGenerator) -> None:
    requests = [
        GenerationRequest(prompt(i), max_tokens=105, seed=100 + i, repetition_penalty=1.3) for i in range(4)
    ]

    async def main() -> tuple[list[list[int]], list[list[int]], int]:
        solo = [await collect(plain, r) for r in requests]
        steps = plain.stats.decode_steps

        async def staggered(i: int) -> list[int]:
            await asyncio.sleep(0.01 * i)  # later prompts prefill while earlier ones decode
            return await collect(plain, requests[i])

        together = await asyncio.gather(*(staggered(i) for i in range(4)))
        return solo, list(together), plain.stats.decode_steps - steps

    solo, together, steps = run(main())
    assert together == solo
    assert steps < 2 * 105, f"{steps} decode steps for 4 x 105 tokens: not batched"


def test_local_cancel_frees_sequences_and_slots_are_reused(models: dict[str, Path]) -> None:
    async def main() -> None:
        generator = LlamaCppGenerator(models["plain"], n_ctx=2048, max_sequences=2, n_threads=1)
        await generator.start()
        try:
            cancelled = GenerationRequest(prompt(0), max_tokens=1000, seed=1)
            kept = generator.generate(cancelled)
            abandoned = generator.generate(GenerationRequest(prompt(1), max_tokens=1000, seed=2))
            assert isinstance(await anext(kept), int) and isinstance(await anext(abandoned), int)
            assert generator.active_sequences == 2
            cancelled.cancel.cancel()
            await abandoned.aclose()  # a consumer that walks away
            rest = [n async for n in kept]
            assert len(rest) < 900
            await wait_for(lambda: generator.active_sequences == 0)
            assert generator.stats.sequences_cancelled == 2
            # Both slots (and their KV cells) are free: 3 requests on 2 slots all finish.
            streams = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        collect(generator, GenerationRequest(prompt(i), max_tokens=40, seed=i))
                        for i in range(3)
                    )
                ),
                20,
            )
            assert [len(s) for s in streams] == [40, 40, 40]
            assert generator.active_sequences == 0 and generator.waiting_requests == 0
        finally:
            await generator.stop()

    run(main())


def test_local_max_tokens_and_context_limits(plain: LlamaCppGenerator) -> None:
    async def main() -> None:
        assert len(await collect(plain, GenerationRequest(prompt(0), max_tokens=10, seed=3))) == 10
        assert await collect(plain, GenerationRequest(prompt(0), max_tokens=0)) == []
        room = plain.n_ctx_per_sequence - len(plain.tokenize(prompt(1)))
        assert len(await collect(plain, GenerationRequest(prompt(1), max_tokens=10**6, seed=3))) == room
        with pytest.raises(EngineError, match="does not fit"):
            await collect(plain, GenerationRequest(prompt(0) * 200, max_tokens=10))

    run(main())


def test_local_slow_consumer_is_paused_without_blocking_others(models: dict[str, Path]) -> None:
    async def main() -> None:
        generator = LlamaCppGenerator(
            models["plain"], n_ctx=2048, max_sequences=2, n_threads=1, max_buffered=8
        )
        await generator.start()
        try:
            slow = generator.generate(GenerationRequest(prompt(0), max_tokens=300, seed=1))
            first = [await anext(slow)]
            await asyncio.sleep(0.3)
            produced = generator.stats.tokens_generated
            assert produced <= 1 + 8 + 1, produced  # read one, 8 buffered, then paused
            other = await collect(generator, GenerationRequest(prompt(1), max_tokens=140, seed=2))
            assert len(other) == 140
            assert generator.stats.tokens_generated - produced == 140  # the slow one stayed paused
            rest = [n async for n in slow]
            assert_valid_stream(first + rest)
            assert len(first + rest) == 300
        finally:
            await generator.stop()

    run(main())


def test_local_queue_is_bounded_with_a_clear_error(models: dict[str, Path]) -> None:
    async def main() -> None:
        generator = LlamaCppGenerator(
            models["plain"], n_ctx=1024, max_sequences=1, n_threads=1, max_waiting=1
        )
        await generator.start()
        try:
            running = generator.generate(GenerationRequest(prompt(0), max_tokens=500, seed=1))
            await anext(running)
            waiting = asyncio.create_task(collect(generator, GenerationRequest(prompt(1), max_tokens=7)))
            await wait_for(lambda: generator.waiting_requests == 1)
            with pytest.raises(EngineError, match="capacity"):
                await collect(generator, GenerationRequest(prompt(2), max_tokens=7))
            await running.aclose()
            assert len(await asyncio.wait_for(waiting, 10)) == 7
        finally:
            await generator.stop()
        with pytest.raises(EngineError, match="not loaded"):
            await collect(generator, GenerationRequest(prompt(0)))

    run(main())


def test_local_missing_or_non_orpheus_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not found"):
        run(LlamaCppGenerator(tmp_path / "missing.gguf").start())
    small = write_tiny_orpheus_gguf(
        tmp_path / "small.gguf", n_custom=100, n_embd=16, n_head=2, n_head_kv=1, n_ff=32
    )
    with pytest.raises(EngineError, match="not an Orpheus model"):
        run(LlamaCppGenerator(small, n_ctx=256, max_sequences=1).start())


# -- remote generator ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the plain tiny model; yields its /v1 base URL."""
    with llama_server(models["plain"], tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


async def _remote(base: str, **kwargs) -> RemoteCompletionsGenerator:  # type: ignore[no-untyped-def]
    generator = RemoteCompletionsGenerator(base, model="orpheus", **kwargs)
    await generator.start()
    return generator


def test_remote_streams_valid_frames_matching_the_raw_completion(server: str) -> None:
    request = GenerationRequest(prompt(0), max_tokens=70, seed=11)

    async def main() -> tuple[list[int], dict[str, int], dict[str, object]]:
        generator = await _remote(server)
        try:
            numbers = await collect(generator, request)
            assert generator.active_sequences == 0
            return numbers, generator.stats.snapshot(), generator.request_body(request)
        finally:
            await generator.stop()

    assert isinstance(RemoteCompletionsGenerator(server), TokenGenerator)
    numbers, stats, body = run(main())
    raw = httpx.post(f"{server}/completions", timeout=30, json={**body, "stream": False})
    expected = [int(n) for n in re.findall(r"<custom_token_(\d+)>", raw.json()["choices"][0]["text"])]
    assert_valid_stream(numbers)
    assert len(numbers) == 70 and numbers == expected
    assert stats["tokens_generated"] == 70 and stats["dropped_tokens"] == 0
    assert stats["sequences_completed"] == 1


def test_remote_cancel_closes_the_stream_promptly(server: str) -> None:
    async def main() -> None:
        generator = await _remote(server)
        try:
            long = GenerationRequest(prompt(0), max_tokens=6000, seed=1)
            stream = generator.generate(long)
            for _ in range(7):
                await anext(stream)
            long.cancel.cancel()
            started = time.perf_counter()
            rest = [n async for n in stream]
            assert time.perf_counter() - started < 0.5
            assert len(rest) < 200
            # The server stopped generating: the next request is served at once, not after 6000 tokens.
            started = time.perf_counter()
            assert len(await collect(generator, GenerationRequest(prompt(1), max_tokens=14, seed=2))) == 14
            assert time.perf_counter() - started < 3
            assert generator.stats.sequences_cancelled == 1 and generator.active_sequences == 0
        finally:
            await generator.stop()

    run(main())


def test_remote_errors_are_clear(server: str) -> None:
    async def failure(base: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
        generator = await _remote(base, **kwargs)
        try:
            with pytest.raises(EngineError) as info:
                await collect(generator, GenerationRequest(prompt(0), max_tokens=7))
            assert generator.stats.sequences_failed == 1
            return str(info.value)
        finally:
            await generator.stop()

    async def main() -> None:
        refused = await failure(f"http://127.0.0.1:{free_port()}/v1", connect_timeout=2)
        assert "cannot reach" in refused
        missing = await failure(server.replace("/v1", "/nope/v1"))
        assert "404" in missing and "Not Found" in missing
        invalid = await failure(server, extra_body={"temperature": "hot"})
        assert "500" in invalid and "temperature" in invalid

    run(main())


# -- remote generator on a scripted stream: parsing edge cases and what is sent --------------------------------


def _sse(pieces: list[str]) -> bytes:
    events = [f"data: {json.dumps({'choices': [{'text': p, 'index': 0}]})}\n\n" for p in pieces]
    return ("".join(events) + ": ping\n\ndata: [DONE]\n\n").encode()


def test_remote_drops_out_of_range_tokens_and_reassembles_split_ones() -> None:
    frame = [codes.token_number(p, 100 + p) for p in range(7)]
    bad = codes.token_number(3, 5)  # a position-3 code where position 2 belongs
    text = "".join(f"<custom_token_{n}>" for n in [*frame[:2], bad, *frame, 1, *frame])
    pieces = [text[i : i + 9] for i in range(0, len(text), 9)] + ["<custom_token_2>", "<custom_token_10>"]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=_sse(pieces), headers={"content-type": "text/event-stream"})

    async def main() -> tuple[list[int], dict[str, int]]:
        generator = RemoteCompletionsGenerator(
            "http://remote/v1/",
            api_key="sk-test",
            model="orpheus-3b",
            extra_body={"top_k": 40, "repeat_penalty": None},
            transport=httpx.MockTransport(handler),
        )
        await generator.start()
        try:
            return await collect(
                generator, GenerationRequest("p", max_tokens=100, seed=4)
            ), generator.stats.snapshot()
        finally:
            await generator.stop()

    numbers, stats = run(main())
    assert numbers == frame + frame  # the broken partial frame is gone; end-of-speech stops the rest
    assert stats["dropped_tokens"] == 3
    request = seen[0]
    assert str(request.url) == "http://remote/v1/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "orpheus-3b" and body["stream"] is True and body["seed"] == 4
    assert body["top_k"] == 40 and "repeat_penalty" not in body and body["repetition_penalty"] == 1.1


def test_remote_mid_stream_error_event_is_an_engine_error() -> None:
    content = b'data: {"error": {"message": "out of memory", "code": 500}}\n\n'

    async def main() -> None:
        generator = RemoteCompletionsGenerator(
            "http://remote/v1",
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=content)),
        )
        await generator.start()
        try:
            with pytest.raises(EngineError, match="out of memory"):
                await collect(generator, GenerationRequest("p"))
        finally:
            await generator.stop()

    run(main())


def test_remote_unknown_model_error_from_a_vllm_style_server_names_the_model() -> None:
    # llama_cpp.server serves any model name; vLLM answers 404 with a top-level message.
    body = {
        "object": "error",
        "message": "The model `orpheus` does not exist.",
        "type": "NotFoundError",
        "code": 404,
    }

    async def main() -> None:
        generator = RemoteCompletionsGenerator(
            "http://remote/v1", transport=httpx.MockTransport(lambda request: httpx.Response(404, json=body))
        )
        await generator.start()
        try:
            with pytest.raises(
                EngineError, match=r"answered 404 Not Found: The model `orpheus` does not exist"
            ):
                await collect(generator, GenerationRequest("p"))
        finally:
            await generator.stop()

    run(main())
