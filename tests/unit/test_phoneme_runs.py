"""Long phoneme sequences cut into bounded runs at the most natural place available."""

from __future__ import annotations

import pytest

from realtime.engines.phoneme_runs import split_phonemes


def phonemes(text: str) -> list[str]:
    return list(text)


def test_a_short_sentence_is_one_run() -> None:
    sentence = phonemes("hɛloʊ, wɜːld.")
    assert split_phonemes(sentence, 240) == [sentence]


def test_every_phoneme_is_kept_in_order_and_no_run_is_too_long() -> None:
    sentence = phonemes("ðə kwɪk bɹaʊn fɑks, dʒʌmps oʊvɚ ðə leɪzi dɑɡ; ænd ðɛn ɪt ɹʌnz hoʊm. " * 9)
    runs = split_phonemes(sentence, 50)
    assert all(1 <= len(r) <= 50 for r in runs)
    assert "".join("".join(r) for r in runs).replace(" ", "") == "".join(sentence).replace(" ", "")


def test_a_clause_mark_in_the_second_half_ends_the_run() -> None:
    sentence = phonemes("aaaa bbbb cccc, dddd eeee ffff gggg")
    first, *_ = split_phonemes(sentence, 20)
    assert "".join(first) == "aaaa bbbb cccc,"


def test_without_a_clause_mark_the_run_ends_at_a_word_and_the_next_starts_without_a_space() -> None:
    runs = split_phonemes(phonemes("aaaa bbbb cccc dddd eeee"), 12)
    assert ["".join(r) for r in runs] == ["aaaa bbbb", "cccc dddd", "eeee"]


def test_one_endless_word_is_cut_before_a_stressed_syllable_then_anywhere() -> None:
    sevens = phonemes("sˈɛvən" * 10)
    runs = split_phonemes(sevens, 20)
    assert all(r[0] == "ˈ" or r is runs[0] for r in runs[1:]) or all(len(r) <= 20 for r in runs)
    assert all(len(r) <= 20 for r in runs) and sum(map(len, runs)) == len(sevens)
    assert ["".join(r) for r in split_phonemes(phonemes("x" * 25), 10)] == ["x" * 10, "x" * 10, "x" * 5]


def test_a_nonpositive_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        split_phonemes(phonemes("abc"), 0)
