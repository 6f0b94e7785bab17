"""Kokoro's pure parts: phonemes tied to words, frames to word timings, blends, the durations node."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.engines.base import EngineError, parse_blend
from realtime.engines.kokoro.alignment import NO_WORD, TextWord, phoneme_owners, text_words, word_timings


def test_words_are_runs_of_non_spaces_with_a_letter_or_digit() -> None:
    assert [(w.text, w.start, w.end) for w in text_words("Hi, it's 42 — ok.")] == [
        ("Hi,", 0, 3), ("it's", 4, 8), ("42", 9, 11), ("ok.", 14, 17),
    ]  # fmt: skip


def test_phonemes_read_in_context_still_find_their_words() -> None:
    """espeak joins "of the" into one word and reads "a" as ɐ in a sentence but ˈeɪ alone."""
    whole = "ɐ kˈaɪnd ʌvðə ɡˈeɪtweɪ."
    alone = ["ˈeɪ", "kˈaɪnd", "ʌv", "ðə", "ɡˈeɪtweɪ."]
    owners = phoneme_owners(whole, alone)
    assert len(owners) == len(whole)
    words = {}
    for char, owner in zip(whole, owners, strict=True):
        if owner != NO_WORD:
            words.setdefault(owner, []).append(char)
    assert {k: "".join(v) for k, v in words.items()} == {
        0: "ɐ", 1: "kˈaɪnd", 2: "ʌv", 3: "ðə", 4: "ɡˈeɪtweɪ.",
    }  # fmt: skip
    spoken = [o for o in owners if o != NO_WORD]
    assert spoken == sorted(spoken), "owners never go backwards"


def test_frames_become_seconds_with_the_pads_and_a_trimmed_lead() -> None:
    words = [TextWord("Hi", 0, 2), TextWord("you.", 3, 7)]
    owners = [0, 0, NO_WORD, 1, 1, 1]  # "hI yu." as phonemes
    frames = np.array([10, 2, 3, 1, 2, 2, 4, 1])  # pad, six phonemes, pad
    lead = 7 * 600  # 7 of the 10 leading pad frames trimmed
    timings = word_timings(words, owners, frames, first=0, hop=600, sample_rate=24000, origin=-lead)
    assert [(t.word, t.char_start, t.char_end) for t in timings] == [("Hi", 0, 2), ("you.", 3, 7)]
    frame = 600 / 24000
    assert timings[0].start_s == pytest.approx(3 * frame) and timings[0].end_s == pytest.approx(8 * frame)
    assert timings[1].start_s == pytest.approx(9 * frame) and timings[1].end_s == pytest.approx(17 * frame)


def test_a_word_without_phonemes_is_an_instant_in_its_place() -> None:
    words = [TextWord("a", 0, 1), TextWord("b", 2, 3), TextWord("c", 4, 5)]
    timings = word_timings(words, [0, NO_WORD, 2], np.array([1, 2, 1, 2, 1]), first=0, hop=600,
                           sample_rate=24000, origin=0)  # fmt: skip
    assert [t.word for t in timings] == ["a", "b", "c"]
    assert timings[1].start_s == timings[1].end_s == timings[0].end_s


def test_blend_weights_are_normalized_and_checked() -> None:
    assert parse_blend("af_bella:0.7+af_sky:0.3") == [
        ("af_bella", pytest.approx(0.7)),
        ("af_sky", pytest.approx(0.3)),
    ]
    assert parse_blend("a+b") == [("a", 0.5), ("b", 0.5)]
    for bad in ("a:x+b", "a:-1+b", "+b", "a:0"):
        with pytest.raises(ValueError):
            parse_blend(bad)


def test_the_duration_tensor_is_found_by_its_shape_in_the_graph() -> None:
    onnx = pytest.importorskip("onnx")
    from realtime.engines.kokoro.model import duration_tensor

    helper, proto = onnx.helper, onnx.TensorProto
    nodes = [
        helper.make_node("Div", ["sum", "speed"], ["div"]),
        helper.make_node("Round", ["div"], ["round"]),
        helper.make_node("Clip", ["round", "one"], ["clip"]),
        helper.make_node("Cast", ["clip"], ["frames"], to=proto.INT64),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("sum", proto.FLOAT, None)],
                              [helper.make_tensor_value_info("frames", proto.INT64, None)])  # fmt: skip
    assert duration_tensor(graph) == "frames"
    del graph.node[3]
    with pytest.raises(EngineError, match="no duration tensor"):
        duration_tensor(graph)


def test_japanese_script_is_read_as_japanese_unless_the_voice_says_otherwise() -> None:
    from realtime.engines.kokoro.g2p import language_of

    assert language_of("こんにちは", None, "en-us") == "ja"
    assert language_of("今日", None, "en-us") == "ja"
    assert language_of("今日", None, "cmn") == "cmn", "a Mandarin voice reads ideographs as Mandarin"
    assert language_of("こんにちは", "en-us", "en-us") == "en-us", "a configured language wins"
    assert language_of("Hello.", None, "en-gb") == "en-gb"
