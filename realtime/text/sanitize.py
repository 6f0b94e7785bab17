"""Client text made safe for every engine, before it reaches one.

Engines fail late and badly on some text: espeak (Piper) raises on a NUL
("embedded null character") or a lone surrogate ("surrogates not allowed")
after the REST response has started, and text with nothing to say (zero-width
characters, punctuation alone) synthesizes nothing at all. So every text source
passes its text through here first:

- a lone surrogate (JSON's `"\\ud800"`) is not Unicode text: refused, naming its position;
- control characters (C0 and C1, but tab, newline and carriage return) become spaces, so
  the words around them stay apart ("Before\\0after" is spoken "Before after");
- invisible format characters (zero-width space and joiners, BOM, bidi marks, soft hyphen)
  are removed.

Pure and cheap: one `translate` per call, so it runs on every streamed token.
"""

from __future__ import annotations

import re
import unicodedata

_SURROGATE = re.compile("[\ud800-\udfff]")
_KEPT_CONTROLS = {"\t", "\n", "\r"}


_PLANES_WITH_CONTROLS = (range(0, 0xD800), range(0xE000, 0x20000), range(0xE0000, 0xE1000))
"""Where Unicode puts control (Cc) and format (Cf) characters: the BMP, the SMP and the tag plane
(scanning these instead of all 1.1 M code points keeps the import under ~30 ms)."""


def _table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in (c for plane in _PLANES_WITH_CONTROLS for c in plane):
        char = chr(code)
        category = unicodedata.category(char)
        if category == "Cc" and char not in _KEPT_CONTROLS:
            table[code] = " "
        elif category == "Cf":
            table[code] = None
    return table


_TRANSLATION = _table()


class InvalidText(ValueError):
    """Text that is not valid Unicode; `code` names the problem for error events and responses."""

    code = "invalid_text"


def clean_text(text: str) -> str:
    """`text` with control characters spaced out and invisible ones removed; InvalidText if it holds
    a lone surrogate."""
    if (bad := _SURROGATE.search(text)) is not None:
        raise InvalidText(
            f"text holds a lone UTF-16 surrogate (U+{ord(bad.group()):04X}) at character {bad.start()}: "
            "it is not valid Unicode"
        )
    return text.translate(_TRANSLATION)


SPOKEN_PUNCTUATION = frozenset("%#&@*/\\§¶†‡‰")
"""Punctuation that is read as a word ("percent", "at"), unlike stops, commas, dashes and quotes."""


def speakable(text: str) -> bool:
    """Whether `text` has anything an engine can say: a letter, a digit, a symbol ("$", "€") or
    punctuation read as a word ("%", "@"). Whitespace, other punctuation and marks alone have none."""
    return any(unicodedata.category(c)[0] in "LNS" or c in SPOKEN_PUNCTUATION for c in text)


def printable(value: str, limit: int | None = 64) -> str:
    """`value` shortened (to `limit` characters; None: whole) and with surrogates escaped, so it can be
    quoted in an error message or log line (which are UTF-8 and would fail on a lone surrogate)."""
    short = value if limit is None or len(value) <= limit else value[:limit] + "…"
    return short.encode("utf-8", "backslashreplace").decode("utf-8")
