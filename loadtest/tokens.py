"""LLM-like text: paragraphs cut into sub-word tokens, released at a token rate.

Tokens are 1-6 characters; a space belongs to the start of the token after it
(as in BPE tokenizers: `"Hello"`, `" wor"`, `"ld"`, `","`), and punctuation is
a token of its own. The first *clause boundary* is the token that starts with
whitespace right after a token ending in `, . ! ? ; :` — the moment a server's
segmenter can confirm the boundary and cut the first segment.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

MAX_TOKEN_CHARS = 6
CLAUSE_END = frozenset(",.!?;:")

DEFAULT_PARAGRAPHS: tuple[str, ...] = (
    "Sure, I can help with that. The quickest way to get there is to take the northbound train to "
    "Central Station, then walk two blocks east. The whole trip takes about twenty minutes, so you "
    "should arrive well before your meeting starts.",
    "Great question! Streaming speech synthesis turns text into audio while the text is still arriving, "
    "so a listener hears the first words long before the answer is complete. The trick is to start "
    "with a short clause and to stay ahead of playback.",
    "Okay, here is a quick summary. Your order shipped yesterday afternoon and should arrive on "
    "Thursday; the tracking number is in the confirmation email. If anything looks wrong, just let me "
    "know and I will sort it out right away.",
    "Hmm, that depends. For a small team, the simplest option is usually the best one: start with a "
    "single server, measure where the time goes, and add complexity only once the numbers say so.",
)

_PIECES = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]| ?_+|\s+")


def tokenize(text: str, rng: random.Random) -> list[str]:
    """Split `text` into LLM-like tokens of 1..6 characters; `"".join(tokens) == text`."""
    tokens: list[str] = []
    pos = 0
    for match in _PIECES.finditer(text):
        if match.start() > pos:  # anything the pattern skipped (cannot happen, but stay lossless)
            tokens += _split(text[pos : match.start()], rng)
        tokens += _split(match.group(), rng)
        pos = match.end()
    if pos < len(text):
        tokens += _split(text[pos:], rng)
    return tokens


def _split(piece: str, rng: random.Random) -> list[str]:
    """A word is one token if short enough (usually), otherwise sub-word pieces of 2..6 chars."""
    if len(piece) <= 4 or (len(piece) <= MAX_TOKEN_CHARS and rng.random() < 0.8):
        return [piece]
    out: list[str] = []
    while len(piece) > MAX_TOKEN_CHARS:
        size = rng.randint(2, MAX_TOKEN_CHARS)
        if 0 < len(piece) - size < 2:  # avoid a dangling 1-char piece where we can
            size -= 1
        out.append(piece[:size])
        piece = piece[size:]
    if piece:
        out.append(piece)
    return out


def clause_boundary(tokens: Sequence[str]) -> int | None:
    """Index of the token that confirms the first clause boundary, or None."""
    for i in range(1, len(tokens)):
        if tokens[i][:1].isspace() and tokens[i - 1][-1] in CLAUSE_END:
            return i
    return None


async def paced(
    tokens: Sequence[str], rate: float, jitter: float, rng: random.Random, stop_at: float
) -> AsyncIterator[tuple[int, str]]:
    """Yield `(index, token)` at `rate` per second (each gap scaled by 1 ± `jitter`).

    Stops early once `time.perf_counter()` passes `stop_at`; the first token always goes.
    The schedule is absolute, so slow consumers do not make the stream drift slower.
    """
    next_at = time.perf_counter()
    for i, token in enumerate(tokens):
        now = time.perf_counter()
        if i and now >= stop_at:
            return
        if next_at > now:
            await asyncio.sleep(next_at - now)
        yield i, token
        next_at += rng.uniform(1.0 - jitter, 1.0 + jitter) / rate


def load_paragraphs(path: str | Path | None) -> list[str]:
    """Paragraphs (separated by blank lines) of a text file, or the built-in ones."""
    if path is None:
        return list(DEFAULT_PARAGRAPHS)
    text = Path(path).read_text(encoding="utf-8")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        raise ValueError(f"{path} holds no text")
    return paragraphs


def text_of_length(chars: int, paragraphs: Sequence[str]) -> str:
    """About `chars` characters of the paragraphs, repeated as needed, cut at a word."""
    source = " ".join(paragraphs)
    text = (source + " ") * (chars // (len(source) + 1) + 1)
    cut = text[:chars]
    if len(cut) < len(text) and " " in cut and not text[chars].isspace():
        cut = cut.rsplit(" ", 1)[0]
    return cut.strip()
