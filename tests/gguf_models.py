"""Tiny random Orpheus-shaped GGUF models the tests build themselves.

Real Orpheus weights cannot be downloaded here, but llama.cpp only needs the
right shapes and vocabulary to exercise every code path: a Llama-architecture
model with a Llama-3-style byte-level BPE vocabulary (`gpt2` / `llama-bpe`),
the control tokens the prompt template uses, and the full `<custom_token_N>`
range as USER_DEFINED tokens (llama.cpp matches those in prompt text as single
tokens and prints them as text in output, like the real model's added tokens).
The custom tokens deliberately do not start at 128256: callers must look ids up
by token text.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np

from loadtest.common import free_port, wait_for_http
from realtime.engines.orpheus import codes

SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>")
DEFAULT_CUSTOM_TOKENS = codes.CODE_OFFSET + codes.FRAME_TOKENS * codes.CODEBOOK_SIZE + 16
_WEIGHT_TYPES = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
"""Element type of the 2-D weights (norms stay f32, as llama.cpp requires)."""
_MERGES = ("Ġ t", "h e", "i n", "e r", "a n", "Ġ a", "o n", "Ġt he")


def _byte_symbols() -> list[str]:
    """The byte-level BPE alphabet: one printable character per byte value (GPT-2's scheme)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def tiny_vocab(n_custom: int = DEFAULT_CUSTOM_TOKENS) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges: bytes, a few merges, Llama 3 specials, then custom tokens."""
    tokens = _byte_symbols()
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    for merge in _MERGES:
        tokens.append(merge.replace(" ", ""))
        types.append(int(gguf.TokenType.NORMAL))
    for special in SPECIAL_TOKENS:
        tokens.append(special)
        types.append(int(gguf.TokenType.CONTROL))
    for n in range(n_custom):
        tokens.append(f"<custom_token_{n}>")
        types.append(int(gguf.TokenType.USER_DEFINED))
    return tokens, types, list(_MERGES)


def write_tiny_orpheus_gguf(
    path: str | Path,
    *,
    n_custom: int = DEFAULT_CUSTOM_TOKENS,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_ctx_train: int = 4096,
    seed: int = 0,
    end_row_scale: float = 1.0,
    frame_bias: float = 0.0,
    add_bos: bool = True,
    weight_type: str = "f16",
) -> Path:
    """Write a random Llama GGUF with an Orpheus vocabulary; deterministic from `seed`.

    `end_row_scale` multiplies the output rows of the end-of-speech and EOS tokens:
    a random model almost never picks them (1 in ~4097), so tests that need
    sequences to end on their own raise it.

    `frame_bias` > 0 teaches the random model the 7-token frame cycle, so that even
    unconstrained sampling (a remote server) yields mostly valid frames: the embedding
    of every code at position p gets a strong component on dimension p, and the output
    rows of position p+1's codes (and of the end tokens, after position 6) read it.
    `<custom_token_1>` (start-of-speech, the prompt's last token) points at position 0.
    """
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must divide by n_head and n_head by n_head_kv")
    path = Path(path)
    tokens, types, merges = tiny_vocab(n_custom)
    ids = {t: i for i, t in enumerate(tokens)}
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)

    if weight_type not in _WEIGHT_TYPES:
        raise ValueError(f"weight_type must be one of {sorted(_WEIGHT_TYPES)}")
    qtype, file_type = _WEIGHT_TYPES[weight_type]

    def add_matrix(name: str, values: np.ndarray) -> None:
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, values.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)

    def matrix(rows: int, cols: int, scale: float) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * scale

    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name("tiny-random-orpheus")
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(500000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(file_type)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(ids["<|begin_of_text|>"])
    writer.add_eos_token_id(ids["<|eot_id|>"])
    writer.add_eot_token_id(ids["<|eot_id|>"])
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)

    ones = np.ones(n_embd, dtype=np.float32)
    embedding = rng.standard_normal((n_vocab, n_embd), dtype=np.float32)
    output = rng.standard_normal((n_vocab, n_embd), dtype=np.float32) / np.sqrt(n_embd) * 2.0
    end_rows = [ids[f"<custom_token_{codes.END_OF_SPEECH}>"], ids["<|eot_id|>"]]
    output[end_rows] *= end_row_scale
    if frame_bias:
        if n_embd < codes.FRAME_TOKENS:
            raise ValueError("frame_bias needs n_embd >= 7")
        first = ids["<custom_token_0>"]
        last_position = codes.FRAME_TOKENS - 1
        embedding[ids[f"<custom_token_{codes.START_OF_SPEECH}>"], last_position] += 3.0 * np.sqrt(n_embd)
        for p in range(codes.FRAME_TOKENS):
            rows = slice(first + codes.position_range(p).start, first + codes.position_range(p).stop)
            embedding[rows, p] += 3.0 * np.sqrt(n_embd)
            output[rows, (p - 1) % codes.FRAME_TOKENS] += frame_bias
        output[end_rows, : codes.FRAME_TOKENS] = 0.0
        output[end_rows, last_position] = frame_bias
    add_matrix("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", ones)
    add_matrix("output.weight", output)
    inner = 1.0 / np.sqrt(n_embd)
    for b in range(n_layer):
        writer.add_tensor(f"blk.{b}.attn_norm.weight", ones)
        add_matrix(f"blk.{b}.attn_q.weight", matrix(n_embd, n_embd, inner))
        add_matrix(f"blk.{b}.attn_k.weight", matrix(n_head_kv * head_dim, n_embd, inner))
        add_matrix(f"blk.{b}.attn_v.weight", matrix(n_head_kv * head_dim, n_embd, inner))
        add_matrix(f"blk.{b}.attn_output.weight", matrix(n_embd, n_embd, inner))
        writer.add_tensor(f"blk.{b}.ffn_norm.weight", ones)
        add_matrix(f"blk.{b}.ffn_gate.weight", matrix(n_ff, n_embd, inner))
        add_matrix(f"blk.{b}.ffn_up.weight", matrix(n_ff, n_embd, inner))
        add_matrix(f"blk.{b}.ffn_down.weight", matrix(n_embd, n_ff, 1.0 / np.sqrt(n_ff)))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@contextmanager
def llama_server(model: Path, log: Path, *, n_ctx: int = 8192) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on `model` in a child process; yields its /v1 URL.

    `--interrupt_requests False`: by default a new request ends the stream in progress.
    """
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1", "--interrupt_requests", "False"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        if not wait_for_http(f"{base}/models", process, 60):
            raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-3000:]}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
