"""Cutting a sentence's phonemes into runs of bounded length, for one model call each.

A VITS model (Piper) synthesizes a whole phoneme sequence in one call, and ONNX
Runtime's memory for that call grows with the audio it produces: about 20 MB per
second of audio on the embedded voice (docs/BENCHMARKS.md). Text that espeak spells
letter by letter (Arabic given to an English voice: 25 characters, 16 s of audio)
or reads as one endless word (200 digits) would otherwise take hundreds of MB in a
single call. Runs end where a pause is natural: after clause punctuation if one lies
in the second half of the run, else at a word boundary, else before a stressed
syllable, else anywhere. Pure.
"""

from __future__ import annotations

CLAUSE_MARKS = frozenset(",;:.!?")
WORD_BREAK = " "
STRESS = frozenset("ˈˌ")


def split_phonemes(phonemes: list[str], limit: int) -> list[list[str]]:
    """`phonemes` as consecutive runs of at most `limit` phonemes (all of them, in order)."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    runs: list[list[str]] = []
    rest = phonemes
    while len(rest) > limit:
        cut = _cut(rest, limit)
        runs.append(rest[:cut])
        rest = rest[cut:]
        while rest and rest[0] == WORD_BREAK:  # a run never starts with a pause
            rest = rest[1:]
    if rest:
        runs.append(rest)
    return runs


def _cut(phonemes: list[str], limit: int) -> int:
    """Where to end the first run: a length in [1, limit]."""
    window = phonemes[:limit]
    half = limit // 2
    for i in range(len(window) - 1, half - 1, -1):
        if window[i] in CLAUSE_MARKS:
            return i + 1
    for i in range(len(window) - 1, 0, -1):
        if window[i] == WORD_BREAK:
            return i
    for i in range(len(window) - 1, 0, -1):
        if window[i] in STRESS:
            return i
    return limit
