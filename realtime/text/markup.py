"""Markup and emoji an engine should not read aloud: the front end's language-neutral rules.

Patterns are compiled with `re.MULTILINE` (`^` is a line start). An LLM answers in Markdown (`**bold**`, `# heading`, bullets, backticks, links) and with emoji; an
engine reading them says "asterisk asterisk" or "smiling face", or nothing useful. Each rule is a
regular expression and what it says instead (`Rule`); `normalize.py` runs them in one pass.

Only well-known HTML elements are stripped (`<b>`, `<br/>`, `<p>` ...): other angle-bracket words
stay, because Orpheus reads `<laugh>` or `<sigh>` as sounds to make.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One pattern of the front end and what to say for a match (None: keep it as written)."""

    name: str
    pattern: str
    say: Callable[[re.Match[str], str], str | None]


def _drop(m: re.Match[str], text: str) -> str:
    return ""


def _space(m: re.Match[str], text: str) -> str:
    return " "


def _group(name: str) -> Callable[[re.Match[str], str], str]:
    return lambda m, text: m.group(name)


_HTML = (
    "a|abbr|b|blockquote|br|code|del|div|em|h[1-6]|hr|i|ins|kbd|li|mark|ol|p|pre|s|small|span|strong|"
    "sub|sup|table|td|th|tr|u|ul"
)
EMOJI = (
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f\u20e3\U000e0020-\U000e007f"
    "\u200d\u2122\u00a9\u00ae]+"
)
"""Emoji and pictographs (with their variation selectors, keycaps, joiners and flag tags), ™ © ®."""

RULES = (
    Rule("fence", r"^[ \t]*(?:```|~~~)[^\n]*$", _drop),
    Rule("heading", r"^[ \t]*#{1,6}[ \t]+", _drop),
    Rule("bullet", r"^[ \t]*[-*+•‣◦▪][ \t]+", _drop),
    Rule("quote", r"^[ \t]*>[ \t]?", _drop),
    Rule("rule", r"^[ \t]*(?:[-*_][ \t]*){3,}$", _drop),
    Rule("image", r"!\[(?P<image_alt>[^\]\n]{0,200})\]\([^)\s]{0,500}\)", _group("image_alt")),
    Rule("link", r"\[(?P<link_text>[^\]\n]{1,200})\]\((?:https?://|/|#|mailto:)[^)\s]{0,500}\)", _group("link_text")),
    Rule("html", rf"</?(?:{_HTML})(?:\s[^<>\n]{{0,100}})?/?>", _space),
    Rule("emphasis", r"\*\*|__|~~|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|(?<!\w)_(?=[^\s_])|(?<=[^\s_])_(?!\w)", _drop),
    Rule("code", r"`+", _drop),
    Rule("table", r"^\|?(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*:?-*:?[ \t]*$|\|", _space),
    Rule("emoji", EMOJI, _space),
)  # fmt: skip
