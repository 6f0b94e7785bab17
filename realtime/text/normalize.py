"""The text front end: a segment as written → what an engine should read, with the map back.

`normalize(text, mode)` runs every rule of the mode in one left-to-right regular-expression pass
(the first rule listed wins where several match at one place) and returns a `SpokenText`, whose
map ties each spoken span to the characters the LLM wrote. Modes:

- `full`: markup and emoji stripped (`markup.py`), and numbers, money, dates, times, units, URLs,
  abbreviations and acronyms spoken out in English (`readings.py`): for engines that read raw
  text (Orpheus, most neural models).
- `markup`: markup and emoji only: for engines that read numbers in their own language (Piper's
  espeak) but would say "asterisk" or skip an emoji.
- `off`: the text as written.

Pure, deterministic and fast enough for the event loop: one compiled pattern per mode, about
150 µs for an 80-character segment on the shared 2-core development VM (one segment every
few hundred ms per session; tests/unit/test_text_normalize.py bounds it).
"""

from __future__ import annotations

import re
from typing import Literal

from . import markup, readings
from .markup import Rule
from .spoken import SpokenBuilder, SpokenText

Mode = Literal["full", "markup", "off"]
MODES: tuple[Mode, ...] = ("full", "markup", "off")


class _Pass:
    """Rules compiled into one alternation; a match's rule is the named group that took part."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.regex = re.compile("|".join(f"(?P<{r.name}>{r.pattern})" for r in rules), re.MULTILINE)
        self.rules = {r.name: r for r in rules}

    def run(self, text: str) -> SpokenText:
        out = SpokenBuilder(text)
        at = 0
        shouting = _mostly_capitals(text)
        for m in self.regex.finditer(text):
            rule = self.rules[m.lastgroup or ""] if m.lastgroup in self.rules else self._rule(m)
            if rule.name == "acronym" and shouting:
                continue
            spoken = rule.say(m, text)
            if spoken is None:
                continue
            out.copy(at, m.start())
            out.say(spoken, m.start(), m.end())
            at = m.end()
        out.copy(at, len(text))
        return out.build()

    def _rule(self, m: re.Match[str]) -> Rule:
        # `lastgroup` names the last group closed, an inner one when the rule has its own groups.
        for name, rule in self.rules.items():
            if m.group(name) is not None:
                return rule
        raise AssertionError("a match without a rule")


def _mostly_capitals(text: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", text)
    return len(words) >= 3 and sum(w.isupper() for w in words) * 2 > len(words)


_PASSES = {"full": _Pass(markup.RULES + readings.RULES), "markup": _Pass(markup.RULES)}


def normalize(text: str, mode: Mode = "full") -> SpokenText:
    """`text` as an engine should read it under `mode`, with the map back to `text`."""
    if mode == "off" or not text:
        return SpokenText.same(text)
    return _PASSES[mode].run(text)
