"""Text made safe before any engine sees it: surrogates refused, controls spaced, invisibles removed."""

from __future__ import annotations

import pytest

from realtime.text.sanitize import InvalidText, clean_text, printable, speakable


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("Before\x00after", "Before after"),
        ("tab\tnew\nline\r", "tab\tnew\nline\r"),
        ("bell\x07 and \x1b[0m escape", "bell  and  [0m escape"),
        ("c1\x85char", "c1 char"),
        ("zero\u200bwidth\u200c\u200d\u2060", "zerowidth"),
        ("\ufeffBOM and \u200eLTR\u200f marks", "BOM and LTR marks"),
        ("soft\u00adhyphen", "softhyphen"),
        ("tag\U000e0041chars", "tagchars"),
        ("ordinary text, 3.14 €", "ordinary text, 3.14 €"),
        ("日本語とعربي", "日本語とعربي"),
    ],
)
def test_control_and_invisible_characters_are_cleaned(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


@pytest.mark.parametrize("text, at", [("\ud800", 0), ("ok \udfff", 3), ("pair \ud83d", 5)])
def test_a_lone_surrogate_is_refused_with_its_position(text: str, at: int) -> None:
    with pytest.raises(InvalidText, match=f"U\\+D[89A-F][0-9A-F]{{2}}\\) at character {at}"):
        clean_text(text)


def test_a_real_astral_character_is_not_a_surrogate() -> None:
    assert clean_text("smile 😀") == "smile 😀"


@pytest.mark.parametrize("text", ["a", "7", "$", "%", "😀", "日", " x "])
def test_letters_digits_and_symbols_are_speakable(text: str) -> None:
    assert speakable(text)


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", " - ", "…", "\u0300", "\n\t"])
def test_punctuation_spaces_and_marks_alone_are_not(text: str) -> None:
    assert not speakable(text)


def test_printable_escapes_surrogates_and_shortens() -> None:
    assert printable("\ud800x") == "\\ud800x"
    assert printable("v" * 300) == "v" * 64 + "…"
    printable("\ud800" * 10).encode("utf-8")  # always writable as UTF-8
