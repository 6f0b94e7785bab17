"""The Orpheus token format: prompts, `<custom_token_N>` numbers and SNAC frames.

Orpheus extends Llama 3's vocabulary with `<custom_token_N>` (id 128256 + N).
A few low numbers are markers (start/end of human, AI and speech); audio codes
start at N = 10. Every SNAC frame is 7 tokens; the token at position p of a
frame carries code `N - 10 - p * 4096`, so each position has its own 4096-wide
range. Positions map to SNAC's three levels as 1 + 2 + 4 codes:
level 1: p0; level 2: p1, p4; level 3: p2, p3, p5, p6.

Pure functions only: this module is shared by the token generators (which
constrain sampling to the valid range of each position) and the decoder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .settings import DEFAULT_ORPHEUS_PROMPT

CODE_OFFSET = 10
"""`<custom_token_N>` numbers below this are markers, not audio."""
CODEBOOK_SIZE = 4096
FRAME_TOKENS = 7
SAMPLES_PER_FRAME = 2048
"""SNAC 24 kHz: one 7-token frame is 4 finest-level steps of 512 samples (~85 ms)."""
SAMPLE_RATE = 24000

START_OF_SPEECH = 1
END_OF_SPEECH = 2
START_OF_HUMAN = 3
END_OF_HUMAN = 4
START_OF_AI = 5
END_OF_AI = 6

DEFAULT_PROMPT_TEMPLATE = DEFAULT_ORPHEUS_PROMPT
"""Emotion tags such as `<laugh>` stay in `text`: the model was trained on them."""

_LEVEL_OF_POSITION = (0, 1, 2, 2, 1, 2, 2)


def token_number(position: int, code: int) -> int:
    """The `<custom_token_N>` number that carries `code` at frame `position`."""
    if not 0 <= code < CODEBOOK_SIZE:
        raise ValueError(f"code {code} outside 0..{CODEBOOK_SIZE - 1}")
    return CODE_OFFSET + (position % FRAME_TOKENS) * CODEBOOK_SIZE + code


def code_of(number: int, position: int) -> int | None:
    """The SNAC code a token number carries at `position`, or None when it is out of that range."""
    code = number - CODE_OFFSET - (position % FRAME_TOKENS) * CODEBOOK_SIZE
    return code if 0 <= code < CODEBOOK_SIZE else None


def position_range(position: int) -> range:
    """Token numbers valid at frame `position`: what constrained sampling may choose from."""
    start = CODE_OFFSET + (position % FRAME_TOKENS) * CODEBOOK_SIZE
    return range(start, start + CODEBOOK_SIZE)


def format_prompt(text: str, voice: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    return template.replace("{voice}", voice).replace("{text}", text)


_TOKEN = re.compile(r"<custom_token_(\d+)>")


class CustomTokenParser:
    """Pulls token numbers out of streamed text, where a token may be split across pieces."""

    def __init__(self) -> None:
        self._tail = ""

    def feed(self, piece: str) -> list[int]:
        text = self._tail + piece
        numbers: list[int] = []
        end = 0
        for match in _TOKEN.finditer(text):
            numbers.append(int(match.group(1)))
            end = match.end()
        rest = text[end:]
        cut = rest.rfind("<")
        # Keep only a possibly unfinished token; anything else is plain text to drop.
        self._tail = rest[cut:] if cut >= 0 and ">" not in rest[cut:] and len(rest) - cut < 32 else ""
        return numbers


@dataclass
class FrameAssembler:
    """Turns a stream of token numbers into SNAC frames of 7 codes.

    A number outside its position's range breaks the frame: the partial frame is
    dropped and counted, and the next in-range position-0 token starts a new one.
    With constrained sampling this never happens; a remote server may not constrain.
    """

    frame: list[int] = field(default_factory=list)
    dropped_tokens: int = 0

    @property
    def position(self) -> int:
        return len(self.frame)

    def push(self, number: int) -> list[int] | None:
        """Add one token; returns a complete frame's 7 codes when one is done."""
        if number < CODE_OFFSET:
            return None  # a marker such as start-of-speech
        code = code_of(number, len(self.frame))
        if code is None:
            self.dropped_tokens += len(self.frame) + 1
            self.frame = []
            first = code_of(number, 0)
            if first is None:
                return None
            self.dropped_tokens -= 1
            code = first
        self.frame.append(code)
        if len(self.frame) == FRAME_TOKENS:
            done, self.frame = self.frame, []
            return done
        return None

    def feed(self, numbers: Sequence[int]) -> Iterator[list[int]]:
        for n in numbers:
            frame = self.push(n)
            if frame is not None:
                yield frame


def frames_to_levels(frames: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SNAC's three code tensors (F,), (2F,), (4F,) for `frames` of 7 codes each."""
    array = np.asarray(frames, dtype=np.int64).reshape(-1, FRAME_TOKENS)
    level1 = array[:, 0]
    level2 = array[:, [1, 4]].reshape(-1)
    level3 = array[:, [2, 3, 5, 6]].reshape(-1)
    return level1, level2, level3


def level_of_position(position: int) -> int:
    return _LEVEL_OF_POSITION[position % FRAME_TOKENS]
