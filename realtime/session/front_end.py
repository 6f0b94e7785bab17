"""A context's text front end: SSML in, and each segment made into what its engine should read.

The segmenter cuts the text as written (after SSML markup became text and control marks), so
nothing is normalized across a segment boundary or reordered; just before a segment becomes a job,
`pieces` splits it at its control marks (a break ends a piece and puts silence before the next;
a rate applies from there on) and normalizes each piece for the engine (`text/normalize.py`).
Each piece keeps its `SpokenText`: the map from what the engine read back to the segment's text,
for word alignment and truncation to refer to what the LLM wrote.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..text.normalize import Mode, normalize
from ..text.sanitize import speakable
from ..text.spoken import SpokenText
from ..text.ssml import BREAK, Control, SsmlParser, split_marks

Setting = Literal["auto", "full", "markup", "off"]
SETTINGS: tuple[Setting, ...] = ("auto", "full", "markup", "off")


def resolve(setting: str, engine_wants: Mode) -> Mode:
    """The mode a segment is normalized in: `auto` follows the engine's declared wish
    (`EngineCapabilities.text_front_end`), anything else overrides it."""
    return engine_wants if setting == "auto" else setting  # type: ignore[return-value]


@dataclass(frozen=True)
class Piece:
    """One job's worth of a segment: its text as written, what the engine reads, the silence to
    send before it (SSML breaks) and the speaking rate in effect (SSML prosody)."""

    original: str
    spoken: SpokenText
    pause_s: float = 0.0
    rate: float = 1.0


class FrontEnd:
    """One context's front end; `setting` is `auto`, `full`, `markup` or `off`."""

    def __init__(self, setting: str = "auto", *, ssml: bool = False) -> None:
        self.setting = setting
        self.ssml = ssml
        self._parser = SsmlParser() if ssml else None
        self._rate = 1.0
        self._pause_s = 0.0
        """Break silence not yet placed: it goes before the next piece with something to say."""

    def feed(self, text: str) -> str:
        """Client text → the text the segmenter cuts (SSML markup made into text and control marks)."""
        return text if self._parser is None else self._parser.feed(text)

    def close(self) -> str:
        """No more client text: what the SSML parser still held."""
        return "" if self._parser is None else self._parser.close()

    def pieces(self, segment: str, engine_wants: Mode) -> list[Piece]:
        """`segment` as the jobs to run, in order; pieces with nothing to say are skipped (their breaks
        carry over to the next piece, in this segment or a later one)."""
        mode = resolve(self.setting, engine_wants)
        out: list[Piece] = []
        parts = split_marks(segment) if self._parser is not None else [segment]
        for part in parts:
            if isinstance(part, Control):
                if part.kind == BREAK:
                    self._pause_s += part.value
                else:
                    self._rate = part.value
                continue
            original = part.strip()
            spoken = normalize(original, mode)
            if not speakable(spoken.text):
                continue  # spaces, punctuation, an emoji alone: an engine would say nothing, or "exclamation"
            out.append(Piece(original, spoken, self._pause_s, self._rate))
            self._pause_s = 0.0
        return out

    def respeak(self, original: str, engine_wants: Mode) -> SpokenText:
        """A piece normalized again for another engine (after a failover)."""
        return normalize(original, resolve(self.setting, engine_wants))
