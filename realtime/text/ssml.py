"""A subset of SSML, parsed as it streams in: markup in, plain text with control marks out.

An LLM writes SSML token by token, so a tag arrives in pieces (`<br` `eak ti` `me="1s"/>`).
`SsmlParser.feed` emits text as soon as it is known and holds back only an unfinished tag or
entity; whatever the split, the concatenated output is the same (tests/unit/test_ssml.py splits
documents at every position). Markup is never passed on as text, with one documented limit: a `<`
followed by `MAX_TAG` characters without a `>` was not a tag, and is passed on as text.

What the elements become (the front end reads the result, `normalize.py`):

- `<speak>`, `<p>`, `<s>`, unknown elements: dropped, their text kept (`</p>` and `</s>` end a
  line, which the segmenter treats as a sentence end); comments and `<?xml?>` dropped.
- `<break time="500ms"/>` / `"1s"` / `strength="weak"`: a break mark (`BREAK`), at most
  `MAX_BREAK_S`; the context ends the segment there and sends that much silence.
- `<prosody rate="slow|fast|80%|1.2">`: a rate mark (`RATE`) where the element opens and where it
  closes; the context multiplies the job's speed by it where the engine honours speed.
- `<sub alias="...">text</sub>`: the alias is said instead of the text.
- `<say-as interpret-as="characters|spell-out|digits|telephone|date|time|cardinal|ordinal">`:
  characters and digits are joined by hyphens ("A-P-I", "1-2-3"), which the front end spells one by
  one; `ordinal` gets its suffix ("21" → "21st"); `date`, `time`, `cardinal` are left to the front
  end's own readings. The element's text is held until it closes (at most `MAX_HELD` characters).
- Entities (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&#233;` `&#xE9;`) are decoded; an unknown one
  is kept as written.

Malformed markup never raises: an unclosed element ends with the document, a stray closing tag is
dropped. `check` finds what is malformed in a whole document, for REST to refuse before any audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
"""Control marks are private-use characters a client's text never keeps (`SsmlParser` drops them)."""
BREAK, RATE = "b", "r"
MAX_TAG = 256
MAX_HELD = 500
MAX_BREAK_S = 10.0
_STRENGTH_S = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}
_RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": " "}
_ATTR = re.compile(r"([A-Za-z_][\w:.-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_NAME = re.compile(r"/?\s*([A-Za-z_][\w:.-]*)")
_TAG_START = re.compile(r"[A-Za-z_/!?]")
_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});")
_ENTITY_START = re.compile(r"&(?:#\d{0,7}|#[xX][0-9A-Fa-f]{0,6}|[A-Za-z]{0,8})\Z")
_SPELLED = frozenset(("characters", "spell-out", "verbatim", "digits"))


def mark(kind: str, value: float) -> str:
    """A control mark in the text: `kind` (BREAK seconds, RATE factor) and its value, spaced apart."""
    return f" {MARK_OPEN}{kind}{value:g}{MARK_CLOSE} "


_MARK = re.compile(f"{MARK_OPEN}([{BREAK}{RATE}])([0-9.e+-]+){MARK_CLOSE}")


@dataclass(frozen=True)
class Control:
    """A control mark found in a segment: a break of `value` seconds, or a rate of `value`."""

    kind: str
    value: float


def split_marks(text: str) -> list[str | Control]:
    """`text` as its pieces of text and the controls between them, in order (a mark cut in two by a
    hard segment cut is dropped, never spoken)."""
    out: list[str | Control] = []
    at = 0
    for m in _MARK.finditer(text):
        out.append(text[at : m.start()])
        out.append(Control(m.group(1), float(m.group(2))))
        at = m.end()
    out.append(text[at:])
    return [p.replace(MARK_OPEN, "").replace(MARK_CLOSE, "") if isinstance(p, str) else p for p in out]


def _attributes(tag: str) -> dict[str, str]:
    return {name.lower(): double or single for name, double, single in _ATTR.findall(tag)}


def _seconds(value: str) -> float | None:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", value)
    if m is None:
        return None
    seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    return min(seconds, MAX_BREAK_S)


def _rate(value: str) -> float | None:
    value = value.strip()
    if value in _RATES:
        return _RATES[value]
    m = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)(%?)", value)
    if m is None:
        return None
    number = float(m.group(1))
    if m.group(2):
        number = 1 + number / 100 if value[0] in "+-" else number / 100
    return min(4.0, max(0.25, number)) if number > 0 else None


def _say_as(kind: str, text: str) -> str:
    kind = kind.lower()
    if kind in _SPELLED:
        chars = [c for c in text if c.isalnum()]
        return "-".join(chars) if len(chars) > 1 else "".join(chars)
    if kind == "telephone":
        return ", ".join("-".join(group) for group in re.findall(r"\d+", text)) or text
    if kind == "ordinal" and text.strip().isdecimal() and len(text.strip()) <= 15:
        n = int(text)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return text


def _decode(entity: re.Match[str]) -> str:
    name = entity.group(1)
    if name.startswith("#"):
        code = int(name[2:], 16) if name[1:2] in "xX" else int(name[1:])
        return chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""
    return _ENTITIES.get(name, entity.group())


@dataclass
class _Element:
    name: str
    rate: float | None = None
    alias: str | None = None
    say_as: str | None = None
    held: str = ""


class SsmlParser:
    """Feeds of an SSML document in, its text with control marks out (see the module docstring)."""

    def __init__(self) -> None:
        self._pending = ""
        self._stack: list[_Element] = []

    @property
    def rate(self) -> float:
        """The speaking rate in effect (innermost `prosody` with a rate)."""
        return next((e.rate for e in reversed(self._stack) if e.rate is not None), 1.0)

    def feed(self, chunk: str) -> str:
        """The text known so far from `chunk` (with what was held from earlier feeds)."""
        self._pending += chunk.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")
        return self._run(final=False)

    def close(self) -> str:
        """The end of the document: what was held, and open elements closed."""
        out = self._run(final=True)
        while self._stack:
            out += self._end(self._stack[-1].name)
        return out

    def _run(self, *, final: bool) -> str:
        text, out, at = self._pending, [], 0
        while at < len(text):
            lt = text.find("<", at)
            amp = text.find("&", at)
            nxt = min(p for p in (lt, amp, len(text)) if p >= 0)
            self._text(text[at:nxt], out)
            at = nxt
            if at == len(text):
                break
            if text[at] == "&":
                m = _ENTITY.match(text, at)
                if m is not None:
                    self._text(_decode(m), out)
                    at = m.end()
                elif not final and _ENTITY_START.match(text, at):
                    break  # may still become an entity
                else:
                    self._text("&", out)
                    at += 1
                continue
            end = self._tag_end(text, at)
            if end == -1:  # "a < b": not markup
                self._text("<", out)
                at += 1
                continue
            if end is None:
                if not final and len(text) - at <= MAX_TAG:
                    break  # an unfinished tag: hold it
                self._text("<", out)  # not a tag after all
                at += 1
                continue
            out.append(self._tag(text[at:end]))
            at = end
        self._pending = text[at:]
        return "".join(out)

    @staticmethod
    def _tag_end(text: str, at: int) -> int | None:
        """Where the tag at `text[at]` ends; None if it has not ended (or cannot be a tag)."""
        if at + 1 < len(text) and not _TAG_START.match(text, at + 1):
            return -1  # "a < b": not markup
        if text.startswith("<!--", at):
            end = text.find("-->", at + 4)
            return None if end < 0 or end + 3 - at > MAX_TAG else end + 3
        end = text.find(">", at + 1, at + MAX_TAG + 1)
        return None if end < 0 else end + 1

    def _text(self, text: str, out: list[str]) -> None:
        if not text:
            return
        holder = next((e for e in reversed(self._stack) if e.alias is not None or e.say_as is not None), None)
        if holder is None:
            out.append(text)
        elif len(holder.held) < MAX_HELD:
            holder.held += text

    def _tag(self, tag: str) -> str:
        if tag.startswith(("<!", "<?")):
            return ""
        m = _NAME.match(tag, 1)
        if m is None:
            return ""
        name = m.group(1).lower()
        if tag.startswith("</"):
            return self._end(name)
        attrs = _attributes(tag)
        empty = tag.endswith("/>")
        if name == "break":
            seconds = _seconds(attrs["time"]) if "time" in attrs else None
            if seconds is None:
                seconds = _STRENGTH_S.get(attrs.get("strength", "medium"), 0.4)
            return mark(BREAK, seconds) if seconds > 0 else " "
        if empty:
            return ""
        element = _Element(name)
        if name == "prosody" and "rate" in attrs:
            element.rate = _rate(attrs["rate"])
        elif name == "sub" and "alias" in attrs:
            element.alias = attrs["alias"]
        elif name == "say-as":
            element.say_as = attrs.get("interpret-as", "")
        before = self.rate
        self._stack.append(element)
        return mark(RATE, self.rate) if self.rate != before else ""

    def _end(self, name: str) -> str:
        index = next((i for i in range(len(self._stack) - 1, -1, -1) if self._stack[i].name == name), None)
        if index is None:
            return ""  # a stray closing tag
        out = []
        before = self.rate
        while len(self._stack) > index:
            element = self._stack.pop()
            if element.alias is not None:
                spoken = element.alias
            elif element.say_as is not None:
                spoken = _say_as(element.say_as, element.held)
            else:
                continue
            self._text(spoken, out)  # to the element around it, or out
        if name in ("p", "s"):
            out.append("\n")
        if self.rate != before:
            out.append(mark(RATE, self.rate))
        return "".join(out)


def check(document: str) -> str | None:
    """What is malformed in a whole SSML document (for a request that can still be refused), or None.

    Unclosed or mismatched elements, a `<` that starts no tag within `MAX_TAG` characters, and break
    times or rates that cannot be read."""
    stack: list[str] = []
    for m in re.finditer(r"<!--.*?-->|<[^<>]*>|<", document, re.DOTALL):
        tag = m.group()
        if tag == "<":
            return f"a '<' at character {m.start()} starts no tag (write &lt; for a literal '<')"
        if tag.startswith(("<!", "<?")):
            continue
        name_match = _NAME.match(tag, 1)
        if name_match is None:
            return f"a tag at character {m.start()} has no name"
        name = name_match.group(1).lower()
        attrs = _attributes(tag)
        if tag.startswith("</"):
            if name in stack and stack[-1] != name:
                return f"</{name}> at character {m.start()} comes before </{stack[-1]}>"
            if not stack or stack[-1] != name:
                return f"</{name}> at character {m.start()} closes no open <{name}>"
            stack.pop()
            continue
        if name == "break" and "time" in attrs and _seconds(attrs["time"]) is None:
            return f"break time {attrs['time']!r} is not a duration such as '500ms' or '1s'"
        if name == "prosody" and "rate" in attrs and _rate(attrs["rate"]) is None:
            return f"prosody rate {attrs['rate']!r} is not a rate such as 'slow', '80%' or '1.2'"
        if not tag.endswith("/>"):
            stack.append(name)
    if stack:
        return f"<{stack[-1]}> is never closed"
    return None
