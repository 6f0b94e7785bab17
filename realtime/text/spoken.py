"""Spoken text that remembers where each of its characters came from.

The front end rewrites what an LLM wrote ("$5" → "five dollars") before an engine reads it, but
word timings and interruption offsets must refer to what the LLM wrote. `SpokenText` keeps the
map: each piece of spoken text is either copied from the original (mapped character by
character) or said for an original span (every character of it maps to the whole span).
Pure and small; built with `SpokenBuilder`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class _Piece:
    start: int
    """Where the piece starts in the spoken text."""
    end: int
    orig_start: int
    orig_end: int
    copied: bool
    """Copied from the original: offsets map one to one. Otherwise said for the whole original span."""


@dataclass(frozen=True)
class SpokenText:
    """`text` to speak for `original`, with the map between them."""

    text: str
    original: str
    pieces: tuple[_Piece, ...]

    @classmethod
    def same(cls, original: str) -> SpokenText:
        """`original` spoken as written."""
        piece = _Piece(0, len(original), 0, len(original), copied=True)
        return cls(original, original, (piece,) if original else ())

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original [start, end) span the spoken [start, end) span came from.

        A span inside a rewritten piece ("five" of "five dollars") maps to the whole original token
        ("$5"); an empty or out-of-range span maps to an empty span at the nearest position."""
        if not self.pieces:
            return (0, 0)
        start = max(0, min(start, len(self.text)))
        end = max(start, min(end, len(self.text)))
        first = self._at(start)
        lo = first.orig_start + (start - first.start if first.copied else 0)
        if end == start:
            return (min(lo, first.orig_end), min(lo, first.orig_end))
        last = self._at(end - 1)
        hi = last.orig_start + (end - last.start) if last.copied else last.orig_end
        return (min(lo, hi), max(lo, min(hi, len(self.original))))

    def _at(self, pos: int) -> _Piece:
        """The piece holding spoken position `pos` (the nearest one before it between pieces)."""
        starts = [p.start for p in self.pieces]
        return self.pieces[max(0, bisect_right(starts, pos) - 1)]


class SpokenBuilder:
    """Builds a `SpokenText` left to right; runs of whitespace never double up in the spoken text."""

    def __init__(self, original: str) -> None:
        self.original = original
        self._parts: list[str] = []
        self._pieces: list[_Piece] = []
        self._len = 0
        self._space = True
        """The spoken text so far ends in whitespace (or is empty): more leading whitespace is dropped."""

    def copy(self, start: int, end: int) -> None:
        """Speak `original[start:end]` as written."""
        text = self.original[start:end]
        if self._space:
            stripped = text.lstrip()
            start += len(text) - len(stripped)
            text = stripped
        if text:
            self._add(text, start, start + len(text), copied=True)

    def say(self, spoken: str, start: int, end: int) -> None:
        """Speak `spoken` for `original[start:end]` (empty: drop that span)."""
        if self._space:
            spoken = spoken.lstrip()
        elif spoken[:1].isalnum() and self._parts[-1][-1:].isalnum():
            spoken = " " + spoken  # "about$5" → "about five dollars"
        if spoken:
            self._add(spoken, start, end, copied=False)

    def _add(self, text: str, start: int, end: int, *, copied: bool) -> None:
        self._parts.append(text)
        self._pieces.append(_Piece(self._len, self._len + len(text), start, end, copied))
        self._len += len(text)
        self._space = text[-1].isspace()

    def build(self) -> SpokenText:
        text = "".join(self._parts)
        trimmed = text.rstrip()
        pieces = [p for p in self._pieces if p.start < len(trimmed)]
        if pieces and pieces[-1].end > len(trimmed):
            last = pieces[-1]
            cut = len(trimmed) - last.start
            orig_end = last.orig_start + cut if last.copied else last.orig_end
            pieces[-1] = _Piece(last.start, len(trimmed), last.orig_start, orig_end, last.copied)
        return SpokenText(trimmed, self.original, tuple(pieces))
