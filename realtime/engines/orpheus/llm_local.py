"""Orpheus tokens from a GGUF model in this process, every session batched in one llama.cpp context.

Why one context: a 3B model is memory-bandwidth bound when decoding one token,
so serving N sessions with N contexts (or a lock around one) costs N weight
reads per step while one batch of N tokens costs about one. The scheduler
thread owns the context (llama.cpp contexts are not thread-safe) and loops:

1. admit waiting requests into free sequence slots (`n_seq_max` = max_sequences);
2. build one `llama_batch`: one token for every decoding sequence, then chunks
   of new prompts (chunked prefill) up to `n_batch` tokens in all;
3. `llama_decode` once, then sample each sequence from `llama_get_logits_ith`
   in numpy, masked to its frame position's 4096 codes (plus end-of-speech /
   EOG at frame boundaries), so the stream never has a skipped frame;
4. hand tokens to each `generate()` iterator with `loop.call_soon_threadsafe`;
   a sequence whose consumer has `max_buffered` unread tokens sits out of the
   batch until it drains, so a slow consumer costs no memory or compute;
5. free a finished or cancelled sequence's KV cells with `llama_memory_seq_rm`.

Sampling depends only on a sequence's own logits and its own seeded RNG, so
sequences cannot leak into each other. Bit-identical tokens batched vs. alone
additionally need batch-invariant logits: on CPU that holds with f32 weights,
f32 KV cache and flash attention off (what the tests use). With f16/quantized
weights or flash attention, llama.cpp's kernels round differently per batch
shape (~1e-3 in the logits), so a seeded request now and then draws a different
token when batched: the same distribution, not the same sample. GPU likewise.

Measured on 2 shared x86-64 cores (portable AVX2 build, 1 thread, best of 3,
other work running), total tokens/s for N requests of 210 tokens (35 for the
largest model) served together in one batch vs. one after another:

    python -m loadtest.bench_llm MODEL.gguf --threads 1 [--tokens 35 --repeat 1]

    random model (tests/gguf_models.py)          N=1     N=2     N=4     N=8
    64 dims, 2 layers, f16, 8.5 MB     batched   1494    1213    1683    1809
                                       serial    1488    1127    1384    1238
    512 dims, 8 layers, f16, 110 MB    batched    116     140     186     220
                                       serial      97     104      93      91
    2048 dims, 12 layers, f16, 1.3 GB  batched    5.7    11.7    14.1    16.8
                                       serial     6.3     5.4     5.3     5.6

The tiny model is bound by per-step overhead (graph build, ~0.1 ms of numpy
sampling per token), so batching gains little there; the larger the model, the
more one decode step is a pass over the weights, and N sequences share it
(2.4x and 3x at N=8). A real 3B Orpheus is further into that regime.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import EngineError
from realtime.engines.orpheus import codes
from realtime.engines.orpheus.llm import GenerationRequest, GeneratorStats

logger = logging.getLogger(__name__)
_native_logger = logging.getLogger(__name__ + ".native")

_END = object()
"""Queue item: the sequence finished normally (or was cancelled)."""

_NATIVE_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
"""ggml_log_level -> logging: DEBUG=1, INFO=2 (chatty load details, kept at debug), WARN=3, ERROR=4, CONT=5."""
_KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}
"""KV cache element types by name -> ggml_type."""
_log_callback: Any = None
_backend_lock = threading.Lock()
_backend_ready = False


def _route_native_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to `logging` (info as debug) instead of raw stderr."""
    global _log_callback, _backend_ready
    with _backend_lock:
        if _backend_ready:
            return

        last_level = [logging.DEBUG]

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
            if level != 5:
                last_level[0] = _NATIVE_LEVELS.get(level, logging.DEBUG)
            message = text.decode("utf-8", "replace").rstrip()
            if message:
                _native_logger.log(last_level[0], "%s", message)

        _log_callback = callback  # ctypes callbacks must stay referenced
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def sample_index(
    logits: np.ndarray,
    rng: np.random.Generator,
    *,
    temperature: float,
    top_p: float,
    penalized: np.ndarray | None = None,
    repetition_penalty: float = 1.0,
) -> int:
    """Pick an index into `logits` (already restricted to the allowed tokens).

    Repetition penalty as llama.cpp applies it (divide positive logits, multiply
    negative ones) on `penalized` indices; temperature <= 0 is greedy.
    """
    z = np.asarray(logits, dtype=np.float64).copy()
    if penalized is not None and penalized.size and repetition_penalty != 1.0:
        v = z[penalized]
        z[penalized] = np.where(v > 0, v / repetition_penalty, v * repetition_penalty)
    if temperature <= 0:
        return int(np.argmax(z))
    z /= temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    if 0.0 < top_p < 1.0:
        order = np.argsort(-p)  # quicksort: 6x faster than stable, still deterministic
        cumulative = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
        kept = p[keep]
        pick = int(np.searchsorted(np.cumsum(kept), rng.random() * kept.sum(), side="right"))
        return int(keep[min(pick, keep.size - 1)])
    pick = int(np.searchsorted(np.cumsum(p), rng.random(), side="right"))
    return min(pick, p.size - 1)


@dataclass
class _Sequence:
    """One request's state, owned by the scheduler thread.

    `buffered`, `paused`, `abandoned` and `done` are also touched from the event loop,
    always under the generator's lock.
    """

    request: GenerationRequest
    prompt: list[int]
    max_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    rng: np.random.Generator
    seq_id: int = -1
    prefilled: int = 0
    """Prompt tokens already in the KV cache."""
    n_past: int = 0
    next_token: int = -1
    """Sampled vocab id to feed next step (-1: still in prefill)."""
    generated: int = 0
    recent: deque[int] = field(default_factory=deque)
    """Recently generated numbers, for the repetition penalty (maxlen = penalty_last_n)."""
    buffered: int = 0
    """Tokens handed to the loop and not yet read by the consumer."""
    paused: bool = False
    abandoned: bool = False
    """The consumer went away (closed the iterator)."""
    done: bool = False

    @property
    def stopping(self) -> bool:
        return self.abandoned or self.request.cancel.cancelled


class LlamaCppGenerator:
    """A GGUF Orpheus model in-process; all concurrent `generate()` calls share one batched context."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 8192,
        max_sequences: int = 4,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        max_waiting: int = 64,
        max_buffered: int = 128,
        penalty_last_n: int = 64,
        add_bos: bool = False,
        kv_unified: bool = True,
        flash_attn: bool | None = None,
        kv_cache_type: str = "f16",
    ) -> None:
        """`n_ctx` is shared by all sequences: each gets n_ctx // max_sequences for prompt + output.

        `n_threads` defaults to all cores but one: ggml's threads spin at barriers, and when
        they compete with other work (the SNAC decoder, encoders) one descheduled thread stalls
        every step (measured: 10x slower with 2 threads on 2 busy cores than with 1).
        `n_gpu_layers` offloads layers when llama.cpp was built with a GPU backend (-1: all).
        `add_bos` stays False for the default template, which carries `<|begin_of_text|>` itself.
        `kv_unified` (default) keeps all sequences in one KV buffer. Separate per-sequence
        streams (False) only batch runs of consecutive seq ids: with sessions coming and
        going, ids 0,2,5,7 decode as three ubatches (measured 55 vs 22 ms per step).
        `flash_attn` None lets llama.cpp decide (it enables it where supported).
        `kv_cache_type`: f16 (default), f32, bf16, q8_0 or q4_0 (quantized caches need flash attention).
        """
        if kv_cache_type not in _KV_TYPES:
            raise ValueError(f"kv_cache_type must be one of {sorted(_KV_TYPES)}")
        if max_sequences < 1 or n_batch < max_sequences:
            raise ValueError("need max_sequences >= 1 and n_batch >= max_sequences")
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.max_sequences = max_sequences
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) - 1)
        self.n_gpu_layers = n_gpu_layers
        self.n_batch = n_batch
        self.max_waiting = max_waiting
        self.max_buffered = max(2, max_buffered)
        self.penalty_last_n = penalty_last_n
        self.add_bos = add_bos
        self.kv_unified = kv_unified
        self.flash_attn = flash_attn
        self.kv_cache_type = kv_cache_type
        self.stats = GeneratorStats()

        self._llama: Any = None
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._memory: Any = None
        self._batch: Any = None
        self._n_vocab = 0
        self._n_ctx_seq = 0
        self._ids_by_position: list[np.ndarray] = []
        """Vocab ids of the 4096 codes valid at each frame position (index = code)."""
        self._end_ids = np.zeros(0, dtype=np.int32)
        self._end_of_speech_id = -1

        self._cond = threading.Condition()
        self._waiting: deque[_Sequence] = deque()
        self._running: dict[int, _Sequence] = {}
        self._free_ids: list[int] = list(range(max_sequences))
        """A heap: the lowest free id first keeps active ids packed."""
        self._thread: threading.Thread | None = None
        self._ready = False
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def active_sequences(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting_requests(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def n_ctx_per_sequence(self) -> int:
        return self._n_ctx_seq

    async def start(self) -> None:
        if self._ready:
            return
        started = time.perf_counter()
        await asyncio.to_thread(self._load)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="orpheus-llama", daemon=True)
        self._thread.start()
        self._ready = True
        logger.info(
            "loaded %s in %.2fs: %d sequences x %d tokens, n_batch=%d, %d threads, gpu layers=%d",
            self.model_path.name,
            time.perf_counter() - started,
            self.max_sequences,
            self._n_ctx_seq,
            self.n_batch,
            self.n_threads,
            self.n_gpu_layers,
        )

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._ready = False
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        await asyncio.to_thread(self._unload)

    def _load(self) -> None:
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineError("llama-cpp-python is not installed (pip install llama-cpp-python)") from exc
        self._llama = llama_cpp
        _route_native_logs(llama_cpp)
        if not self.model_path.is_file():
            raise EngineError(f"Orpheus model not found: {self.model_path}")
        if self.n_gpu_layers and not llama_cpp.llama_supports_gpu_offload():
            logger.warning("n_gpu_layers=%d but this llama.cpp build has no GPU backend", self.n_gpu_layers)

        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = self.n_gpu_layers
        model = llama_cpp.llama_model_load_from_file(str(self.model_path).encode(), mparams)
        if not model:
            raise EngineError(f"llama.cpp could not load {self.model_path} (see the native log)")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = self.n_ctx
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = self.max_sequences
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = self.kv_unified
        cparams.no_perf = True
        cparams.type_k = cparams.type_v = _KV_TYPES[self.kv_cache_type]
        if self.flash_attn is not None:
            cparams.flash_attn_type = 1 if self.flash_attn else 0  # LLAMA_FLASH_ATTN_TYPE_ENABLED/_DISABLED
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise EngineError(
                f"llama.cpp could not create a context for {self.model_path} (n_ctx={self.n_ctx})"
            )
        self._model, self._ctx = model, ctx
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        # Each sequence gets an equal share even with a unified cache, so a full house never runs out of cells.
        self._n_ctx_seq = min(
            llama_cpp.llama_n_ctx_seq(ctx), llama_cpp.llama_n_ctx(ctx) // self.max_sequences
        )
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        try:
            self._index_vocab()
            self._warm_up()
        except BaseException:
            self._unload()
            raise

    def _index_vocab(self) -> None:
        """Find every `<custom_token_N>` id by its text: fine-tunes and re-exports may move them."""
        llama_cpp = self._llama
        number_to_id = np.full(
            codes.CODE_OFFSET + codes.FRAME_TOKENS * codes.CODEBOOK_SIZE, -1, dtype=np.int64
        )
        prefix = b"<custom_token_"
        eog: list[int] = []
        for token in range(self._n_vocab):
            text = llama_cpp.llama_vocab_get_text(self._vocab, token) or b""
            if text.startswith(prefix) and text.endswith(b">"):
                digits = text[len(prefix) : -1]
                if digits.isdigit() and int(digits) < number_to_id.size:
                    number_to_id[int(digits)] = token
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                eog.append(token)
        missing = int((number_to_id[codes.CODE_OFFSET :] < 0).sum())
        if missing or number_to_id[codes.END_OF_SPEECH] < 0:
            raise EngineError(
                f"{self.model_path.name} is not an Orpheus model: {missing} audio-code tokens "
                "(<custom_token_N>) missing from its vocabulary"
            )
        self._ids_by_position = [
            number_to_id[codes.position_range(p).start : codes.position_range(p).stop].astype(np.int64)
            for p in range(codes.FRAME_TOKENS)
        ]
        self._end_of_speech_id = int(number_to_id[codes.END_OF_SPEECH])
        self._end_ids = np.array([self._end_of_speech_id, *eog], dtype=np.int64)
        logger.debug(
            "vocab %d tokens, codes at ids %d.., end ids %s",
            self._n_vocab,
            self._ids_by_position[0][0],
            self._end_ids.tolist(),
        )

    def _warm_up(self) -> None:
        """One tiny decode so the first real request does not pay for graph and buffer setup."""
        tokens = self.tokenize(codes.format_prompt("hi", "tara"))[:8]
        self._fill_batch([(0, t, i, i == len(tokens) - 1) for i, t in enumerate(tokens)])
        status = self._llama.llama_decode(self._ctx, self._batch)
        self._llama.llama_memory_seq_rm(self._memory, 0, -1, -1)
        if status != 0:
            raise EngineError(f"llama_decode failed during warm-up ({status})")

    def _unload(self) -> None:
        llama_cpp = self._llama
        if llama_cpp is None:
            return
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    # -- public API ----------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Vocab ids for `text`, with special tokens such as `<custom_token_3>` parsed as single tokens."""
        data = text.encode("utf-8")
        size = len(data) + 8
        buffer = (self._llama.llama_token * size)()
        n = self._llama.llama_tokenize(self._vocab, data, len(data), buffer, size, self.add_bos, True)
        if n < 0:
            size = -n
            buffer = (self._llama.llama_token * size)()
            n = self._llama.llama_tokenize(self._vocab, data, len(data), buffer, size, self.add_bos, True)
        return list(buffer[:n])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[int]:
        if request.max_tokens <= 0:
            return
        seq = self._submit(request)
        try:
            while True:
                item = await seq.queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                self._consumed(seq)
                yield item
        finally:
            if not seq.done:
                with self._cond:
                    seq.abandoned = True
                    self._cond.notify_all()

    def _submit(self, request: GenerationRequest) -> _Sequence:
        if not self._ready:
            raise EngineError("the Orpheus model is not loaded")
        prompt = self.tokenize(request.prompt)
        room = self._n_ctx_seq - len(prompt)
        if room <= 0:
            raise EngineError(
                f"prompt of {len(prompt)} tokens does not fit the {self._n_ctx_seq}-token context"
            )
        max_tokens = min(request.max_tokens, room)
        if max_tokens < request.max_tokens:
            logger.warning("max_tokens %d cut to %d to fit the context", request.max_tokens, max_tokens)
        seq = _Sequence(
            request=request,
            prompt=prompt,
            max_tokens=max_tokens,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(),
            rng=np.random.default_rng(request.seed),
            recent=deque(maxlen=max(1, self.penalty_last_n)),
        )
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise EngineError(
                    f"Orpheus is at capacity: {len(self._running)} generating and {len(self._waiting)} waiting"
                )
            self._waiting.append(seq)
            self.stats.add(sequences_started=1)
            self._cond.notify_all()
        return seq

    def _consumed(self, seq: _Sequence) -> None:
        with self._cond:
            seq.buffered -= 1
            if seq.paused and seq.buffered <= self.max_buffered // 2:
                seq.paused = False
                self._cond.notify_all()

    # -- scheduler thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._admit()
                    while not self._stopping and not self._has_work():
                        self._cond.wait(0.05 if self._running else None)
                        self._admit()
                    if self._stopping:
                        break
                    self._reap()
                    batch = [s for s in self._running.values() if not s.paused and not s.done]
                if batch:
                    self._step(batch)
        except BaseException as exc:  # keep callers from hanging on a dead scheduler
            logger.exception("Orpheus scheduler crashed")
            self._fail_all(EngineError(f"Orpheus generator crashed: {exc}"))
            self._ready = False
            return
        self._fail_all(EngineError("the Orpheus generator stopped"))

    def _has_work(self) -> bool:
        return any(s.stopping or not s.paused for s in self._running.values()) or any(
            s.stopping for s in self._waiting
        )

    def _admit(self) -> None:
        """Move waiting requests into free sequence slots (called with the lock held)."""
        while self._waiting and self._free_ids:
            seq = self._waiting.popleft()
            if seq.stopping:
                self._finish(seq, "cancelled", free=False)
                continue
            seq.seq_id = heapq.heappop(self._free_ids)
            self._running[seq.seq_id] = seq
            self.stats.add(prompt_tokens=len(seq.prompt))

    def _reap(self) -> None:
        """Free cancelled and abandoned sequences (lock held; cheap KV call)."""
        for seq in [s for s in self._waiting if s.stopping]:
            self._waiting.remove(seq)
            self._finish(seq, "cancelled", free=False)
        for seq in [s for s in self._running.values() if s.stopping]:
            self._finish(seq, "cancelled")

    def _finish(
        self, seq: _Sequence, outcome: str, error: BaseException | None = None, *, free: bool = True
    ) -> None:
        if seq.done:
            return
        seq.done = True
        if free and seq.seq_id >= 0:
            self._llama.llama_memory_seq_rm(self._memory, seq.seq_id, -1, -1)
            self._running.pop(seq.seq_id, None)
            heapq.heappush(self._free_ids, seq.seq_id)
        self.stats.add(**{f"sequences_{outcome}": 1})
        self._emit(seq, error if error is not None else _END, count=False)

    def _fail_all(self, error: EngineError) -> None:
        with self._cond:
            for seq in list(self._running.values()) + list(self._waiting):
                self._finish(seq, "failed", error, free=self._ctx is not None)
            self._waiting.clear()
            self._running.clear()
            self._free_ids = list(range(self.max_sequences))

    def _emit(self, seq: _Sequence, item: Any, *, count: bool = True) -> None:
        if count:
            seq.buffered += 1
        try:
            seq.loop.call_soon_threadsafe(seq.queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is closed
            seq.abandoned = True

    def _fill_batch(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """(seq_id, token, pos, wants_logits) rows into the preallocated llama_batch."""
        batch = self._batch
        for i, (seq_id, token, pos, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_id
            batch.logits[i] = logits
        batch.n_tokens = len(entries)

    def _step(self, batch_seqs: list[_Sequence]) -> None:
        """One decode for every decoding sequence plus as much prefill as fits in n_batch."""
        entries: list[tuple[int, int, int, bool]] = []
        outputs: list[tuple[_Sequence, int]] = []
        decoding = sorted((s for s in batch_seqs if s.next_token >= 0), key=lambda s: s.seq_id)
        for seq in decoding:
            outputs.append((seq, len(entries)))
            entries.append((seq.seq_id, seq.next_token, seq.n_past, True))
        budget = self.n_batch - len(entries)
        for seq in batch_seqs:
            if seq.next_token >= 0 or budget <= 0:
                continue
            chunk = seq.prompt[seq.prefilled : seq.prefilled + budget]
            last = seq.prefilled + len(chunk) == len(seq.prompt)
            for i, token in enumerate(chunk):
                entries.append((seq.seq_id, token, seq.prefilled + i, last and i == len(chunk) - 1))
            if last:
                outputs.append((seq, len(entries) - 1))
            seq.prefilled += len(chunk)
            budget -= len(chunk)
        if not entries:
            return
        self._fill_batch(entries)
        status = self._llama.llama_decode(self._ctx, self._batch)
        self.stats.add(decode_steps=1)
        if status != 0:
            logger.error("llama_decode returned %d for %d tokens", status, len(entries))
            with self._cond:
                for seq in batch_seqs:
                    self._finish(seq, "failed", EngineError(f"llama_decode failed ({status})"))
            return
        for seq in batch_seqs:
            seq.n_past = seq.prefilled if seq.next_token < 0 else seq.n_past + 1
        with self._cond:
            for seq, index in outputs:
                if not seq.done:
                    self._sample(seq, index)

    def _sample(self, seq: _Sequence, index: int) -> None:
        """Sample `seq`'s next token from output row `index`, masked to its frame position (lock held)."""
        if seq.stopping:
            self._finish(seq, "cancelled")
            return
        position = seq.generated % codes.FRAME_TOKENS
        ids = self._ids_by_position[position]
        pointer = self._llama.llama_get_logits_ith(self._ctx, index)
        row = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        allowed = np.concatenate([ids, self._end_ids]) if position == 0 else ids
        start = codes.position_range(position).start
        recent = np.fromiter(seq.recent, dtype=np.int64, count=len(seq.recent)) - start
        penalized = np.unique(recent[(recent >= 0) & (recent < codes.CODEBOOK_SIZE)])
        request = seq.request
        choice = sample_index(
            row[allowed],
            seq.rng,
            temperature=request.temperature,
            top_p=request.top_p,
            penalized=penalized,
            repetition_penalty=request.repetition_penalty,
        )
        if choice >= codes.CODEBOOK_SIZE:
            self._finish(seq, "completed")
            return
        number = start + choice
        seq.next_token = int(ids[choice])
        seq.recent.append(number)
        seq.generated += 1
        self.stats.add(tokens_generated=1)
        self._emit(seq, number)
        if seq.generated >= seq.max_tokens:
            self._finish(seq, "completed")
        elif seq.buffered >= self.max_buffered:
            seq.paused = True
