"""The Orpheus token format: `<custom_token_N>` parsing, frame assembly and SNAC level layout."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engines.orpheus import codes
from realtime.engines.orpheus.codes import (
    CODE_OFFSET,
    CODEBOOK_SIZE,
    FRAME_TOKENS,
    CustomTokenParser,
    FrameAssembler,
    code_of,
    format_prompt,
    frames_to_levels,
    level_of_position,
    position_range,
    token_number,
)


def tokens_text(numbers: list[int]) -> str:
    return "".join(f"<custom_token_{n}>" for n in numbers)


def frame_numbers(frame: list[int]) -> list[int]:
    return [token_number(p, c) for p, c in enumerate(frame)]


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("position", range(FRAME_TOKENS))
@pytest.mark.parametrize("code", [0, 1, 2047, CODEBOOK_SIZE - 1])
def test_token_number_round_trip(position: int, code: int) -> None:
    number = token_number(position, code)
    assert number in position_range(position)
    assert code_of(number, position) == code
    assert code_of(number, (position + 1) % FRAME_TOKENS) is None  # each position has its own range


def test_number_layout() -> None:
    assert token_number(0, 0) == CODE_OFFSET == 10
    assert token_number(1, 0) == 10 + 4096
    assert token_number(6, 4095) == 10 + 7 * 4096 - 1
    assert token_number(7, 5) == token_number(0, 5)  # positions wrap per frame
    assert position_range(3) == range(10 + 3 * 4096, 10 + 4 * 4096)
    assert code_of(CODE_OFFSET - 1, 0) is None  # a marker is no code
    for bad in (-1, CODEBOOK_SIZE):
        with pytest.raises(ValueError):
            token_number(0, bad)


def test_levels_of_positions() -> None:
    assert [level_of_position(p) for p in range(FRAME_TOKENS)] == [0, 1, 2, 2, 1, 2, 2]
    assert level_of_position(FRAME_TOKENS + 4) == 1


def test_format_prompt() -> None:
    prompt = format_prompt("Hi <laugh> there", "tara")
    assert prompt.startswith("<custom_token_3><|begin_of_text|>tara: Hi <laugh> there<|eot_id|>")
    assert prompt.endswith("<custom_token_4><custom_token_5><custom_token_1>")
    assert format_prompt("x", "v", template="[{voice}|{text}]") == "[v|x]"


# --------------------------------------------------------------------------- parser


def test_parser_whole_tokens_and_plain_text() -> None:
    parser = CustomTokenParser()
    assert parser.feed("<custom_token_5>hello<custom_token_4106> <|eot_id|>") == [5, 4106]
    assert parser.feed("") == []


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 17])
def test_parser_across_split_pieces(size: int) -> None:
    numbers = [1, 10, 4106, 28681, 12345, 2]
    text = "<|audio|>" + tokens_text(numbers[:3]) + " noise < > " + tokens_text(numbers[3:]) + "<|eot_id|>"
    parser = CustomTokenParser()
    got: list[int] = []
    for i in range(0, len(text), size):
        got += parser.feed(text[i : i + size])
    assert got == numbers


def test_parser_drops_unfinished_garbage() -> None:
    parser = CustomTokenParser()
    assert parser.feed("<custom_tok") == []
    assert parser.feed("en_77>") == [77]
    # A stray "<" followed by a long run of plain text is not held forever.
    assert parser.feed("<" + "x" * 40) == []
    assert parser.feed("<custom_token_8>") == [8]


# --------------------------------------------------------------------------- assembler


def test_assembler_builds_frames() -> None:
    frames = [[1, 2, 3, 4, 5, 6, 7], [4095, 0, 4095, 0, 4095, 0, 4095]]
    numbers = [codes.START_OF_SPEECH] + frame_numbers(frames[0]) + frame_numbers(frames[1])
    assembler = FrameAssembler()
    assert list(assembler.feed(numbers)) == frames
    assert assembler.dropped_tokens == 0 and assembler.position == 0


def test_assembler_markers_do_not_break_a_frame() -> None:
    frame = [9, 8, 7, 6, 5, 4, 3]
    numbers = frame_numbers(frame)
    assembler = FrameAssembler()
    assert list(assembler.feed(numbers[:3] + [codes.END_OF_HUMAN] + numbers[3:])) == [frame]


def test_assembler_resyncs_on_out_of_range_tokens() -> None:
    good = [[11, 12, 13, 14, 15, 16, 17], [21, 22, 23, 24, 25, 26, 27]]
    assembler = FrameAssembler()
    # Three tokens of a frame, then a token valid at no position at all: the partial frame is dropped.
    numbers = frame_numbers(good[0])[:3] + [CODE_OFFSET + FRAME_TOKENS * CODEBOOK_SIZE + 5]
    assert list(assembler.feed(numbers)) == []
    assert assembler.dropped_tokens == 4 and assembler.position == 0
    # A position-0 token where position 2 was due restarts the frame with it.
    numbers = frame_numbers(good[0])[:2] + frame_numbers(good[1])
    assert list(assembler.feed(numbers)) == [good[1]]
    assert assembler.dropped_tokens == 4 + 2
    # A token valid at a later position but out of order: dropped, and it cannot start a frame.
    assert assembler.push(token_number(3, 1)) is None
    assert assembler.dropped_tokens == 7 and assembler.position == 0
    assert list(assembler.feed(frame_numbers(good[0]))) == [good[0]]


# --------------------------------------------------------------------------- levels


def test_frames_to_levels_layout() -> None:
    frames = [[p + 10 * f for p in range(FRAME_TOKENS)] for f in range(3)]
    level1, level2, level3 = frames_to_levels(frames)
    assert level1.tolist() == [0, 10, 20]
    assert level2.tolist() == [1, 4, 11, 14, 21, 24]
    assert level3.tolist() == [2, 3, 5, 6, 12, 13, 15, 16, 22, 23, 25, 26]
    assert all(level.dtype == np.int64 for level in (level1, level2, level3))


def test_frames_to_levels_empty_and_flat() -> None:
    assert [x.shape for x in frames_to_levels([])] == [(0,), (0,), (0,)]
    flat = np.arange(14)
    assert frames_to_levels(flat)[0].tolist() == [0, 7]
