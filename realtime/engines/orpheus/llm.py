"""The contract between the Orpheus engine and whatever produces its tokens.

Two generators implement it: `llm_local.LlamaCppGenerator` (a GGUF model in
this process, all sessions batched in one llama.cpp context) and
`llm_remote.RemoteCompletionsGenerator` (an OpenAI-compatible `/v1/completions`
server). Both yield bare `<custom_token_N>` numbers of audio codes, each valid
for its frame position, so the engine never sees text or vocab ids.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

from realtime.engines.base import CancelToken


@dataclass
class GenerationRequest:
    """One utterance to generate. `prompt` is the full Orpheus prompt (see `codes.format_prompt`)."""

    prompt: str
    max_tokens: int = 1200
    """Cap on generated tokens (~14 s of audio at 7 tokens per 85 ms frame)."""
    temperature: float = 0.6
    top_p: float = 0.8
    repetition_penalty: float = 1.1
    seed: int | None = None
    """Same seed, prompt and settings give the same tokens (the local generator guarantees it)."""
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass
class GeneratorStats:
    """Counters a generator keeps about its own work (read by /metrics and tests)."""

    tokens_generated: int = 0
    """Audio-code tokens yielded to callers."""
    prompt_tokens: int = 0
    sequences_started: int = 0
    sequences_completed: int = 0
    sequences_cancelled: int = 0
    sequences_failed: int = 0
    dropped_tokens: int = 0
    """Tokens outside their frame position's range, thrown away (remote only: local sampling is masked)."""
    decode_steps: int = 0
    """Model forward passes (local); tokens_generated / decode_steps is the mean batch size."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        """Thread-safe increment: the local generator counts from its scheduler thread."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@runtime_checkable
class TokenGenerator(Protocol):
    """Streams Orpheus audio-code token numbers for prompts; shared by every session."""

    stats: GeneratorStats

    async def start(self) -> None:
        """Load the model or open the connection pool (never blocks the event loop)."""

    async def stop(self) -> None:
        """Fail waiting requests, end running ones and release the model or connections."""

    @property
    def ready(self) -> bool:
        """True once `start` has finished and until `stop`."""

    @property
    def active_sequences(self) -> int:
        """Requests being generated right now (not counting those queued for a slot)."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[int]:
        """Yield `<custom_token_N>` numbers of audio codes, each in `codes.position_range` of its position.

        Markers (start-of-speech etc.) are not yielded. Ends at end-of-speech, EOS,
        `max_tokens` or `request.cancel`; closing the iterator early also frees the
        request. Raises `EngineError` when the generator cannot serve the request.
        """
