"""Incremental text segmenter: LLM token deltas in, speakable TTS segments out.

Pure and I/O-free. A scheduler decides *how much* text it wants (``min_chars`` /
``max_chars``); the segmenter only knows *where* a cut is safe and sounds natural.

Rules worth knowing:

* Whitespace is normalised on push: every run becomes one space, or one newline if it
  held a newline. Lengths are therefore exact lengths of the returned segments.
* A boundary is confirmed only once the character after it is known (``"3."`` may become
  ``"3.14"``); the buffer end is a boundary only with ``final=True``.
* Sentence and clause punctuation only count when followed by whitespace (CJK marks: by
  anything), which by itself keeps numbers, URLs, e-mails and domains whole.
* ``"."`` after an abbreviation or initial is not a sentence end (it stays a word
  boundary); ``"etc."`` is one only before a non-lowercase word, ``"No."`` only before a
  non-digit.
* Tags (``<laugh>``, ``[pause]``, ``<break time="1s"/>``) are never cut inside, and while
  one is still open at the buffer end no boundary after its ``<`` / ``[`` counts.
* Readings that hold a space (``"$1.5 billion"``, ``"7:15 pm"``, ``"Dec 7, 2026"``, ``"Dr. Smith"``,
  a phone number: ``text.readings.SPACED_READINGS``) are never cut inside, so the text front end,
  which normalizes each segment alone, sees them whole; while the buffer ends in the start of one
  (a number, a month, a title and a space), no boundary after that start counts until the next
  word arrives.
* Hard cuts (a run with no boundary at all up to ``max_chars``) land at ``max_chars`` but
  not inside a protected unit of at most ``_MAX_UNIT`` chars (tag, URL, e-mail, number or
  other token with inner separators): the cut moves back to the unit's start or, if the
  unit starts the segment, forward to its end, so that segment may exceed ``max_chars``.
  Punctuation glued to the end of a hard-cut segment goes with it rather than being
  left as a segment of its own. While the token at the cut still touches the buffer
  end and is at most ``_MAX_UNIT`` chars long it may yet become a URL or number, so
  the hard cut waits (``None``) unless ``final``.
"""

from __future__ import annotations

import re

from ..text.readings import SPACED_READING_START, SPACED_READINGS
from .phrasing import BAD, GOOD, NEUTRAL, word_cut_quality

SENTENCE, CLAUSE, WORD_GOOD, WORD, WORD_BAD = 5, 4, 3, 2, 1
"""Boundary strengths. Word boundaries are graded by the words around them (`phrasing`): before a
conjunction is better than between two nouns, and after an article or a preposition worse."""
_WORD_STRENGTH = {GOOD: WORD_GOOD, NEUTRAL: WORD, BAD: WORD_BAD}

_MAX_TAG = 100  # longer "<...>" / "[...]" runs are ordinary text
_MAX_UNIT = 256  # protected units longer than this may be hard-cut
_GOVERNED_SLACK = 24  # how far past the budget a cut may move to spare a governing word
_CLOSERS = "\"'”’»)\\]}」』"
_OPENERS = "\"'“‘«([{「『"

_WS_RUN = re.compile(r"\s+")
_WS = re.compile(r"\s")
_CLOSE = f"[{_CLOSERS}]{{0,8}}"  # bounded, and runs only match from their start: no
_BOUNDARY = re.compile(  # quadratic backtracking on "....." or ")))))"
    rf"(?P<sent>(?<![.!?…])[.!?…]+{_CLOSE})(?=\s)"
    rf"|(?P<cjk>(?<![。！？])[。！？]+{_CLOSE})(?=[\s\S])"
    rf"|(?P<clause>(?:[,;:]|(?<=\s)[—–]){_CLOSE}|\))(?=\s)"
    r"|(?P<cjkc>[，、；：])(?=[\s\S])"
    r"|(?P<ws>\s)"
)
# Cheap C-speed pre-checks that let most calls skip the full boundary scan: every
# boundary needs a _BREAK char, every sentence/clause boundary a _HINT match.
_BREAK = re.compile(r"[\s。！？，、；：]")
_HINT = re.compile(rf"[.!?…,;:—–{_CLOSERS}]\s|[\n。！？，、；：]")
_TAG_RE = rf"<[A-Za-z/!?_][^<>\n]{{0,{_MAX_TAG - 2}}}>|\[[^\[\]\n]{{1,{_MAX_TAG - 2}}}\]"
_TAG = re.compile(_TAG_RE)
_OPEN_TAG = re.compile(
    rf"(?:<(?:[A-Za-z/!?_][^<>\n]{{0,{_MAX_TAG - 2}}})?|\[[^\[\]\n]{{0,{_MAX_TAG - 2}}})\Z"
)
_UNIT = re.compile(
    _TAG_RE
    + r"|(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?…'’”)\]}]"  # URL, minus trailing punct
    + r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
    + r"|(?<!\w)[$€£¥]?\w+(?:[.,:/@-]\w+)+%?"  # 3.14, 1,000, 10:30, 2024-05-01, v2.0.1, e.g
    + r"|(?<!\w)[$€£¥]?\d\w*%?"  # plain numbers
)
_SPACED = re.compile(SPACED_READINGS)
_SPACED_OPEN = re.compile(SPACED_READING_START)
_SPACED_HINT = re.compile(r"\d|[A-Z][a-z]{1,2}\.?\s")
"""Every spaced reading holds a digit or a title or month before a space: most text skips the scan."""
_TRAIL = re.compile(rf"[.,;:!?…{_CLOSERS}]+")
_INITIALS = re.compile(r"[A-Z]|(?:[A-Za-z]\.)+[A-Za-z]")  # J. / e.g. / U.S. / a.m.
_TITLES = frozenset("Dr Mr Mrs Ms Prof St Jr Sr Mt Rev Gen Col Capt Lt Sgt vs Vs cf approx".split())


def _normalise(text: str) -> str:
    return _WS_RUN.sub(lambda m: "\n" if "\n" in m.group() else " ", text)


def _ends_sentence(text: str, dot: int, after: int) -> bool:
    """Whether the ``"."`` at ``dot`` ends a sentence; ``after`` starts the next word."""
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in _OPENERS:
        start -= 1
    word = text[start:dot]
    if word in _TITLES or _INITIALS.fullmatch(word):
        return False
    if word.isdigit() and len(word) <= 2 and (start == 0 or text[start - 1] == "\n"):
        return False  # list marker "1. "
    if word in ("etc", "No"):
        if after >= len(text):
            return False  # not confirmed yet: depends on the next word
        nxt = text[after]
        return not nxt.islower() if word == "etc" else not nxt.isdigit()
    return True


def _boundaries(text: str, limit: int, closed: bool) -> list[tuple[int, int]]:
    """Confirmed ``(cut position, strength)`` pairs up to ``limit``, in position order.

    ``closed`` means nothing can follow ``text``, so its end is a sentence boundary.
    """
    found: list[tuple[int, int]] = []
    matches = _BOUNDARY.finditer(text, 0, limit + 1) if _BREAK.search(text, 0, limit + 1) else ()
    for m in matches:
        kind = m.lastgroup
        if kind == "ws":
            pos = m.start()
            strength = SENTENCE if m.group() == "\n" else _word_strength(text, pos, closed)
            found.append((pos, strength))
        elif kind == "sent":
            punct = m.group().rstrip(_CLOSERS)
            if punct != "." or _ends_sentence(text, m.start(), m.end() + 1):
                found.append((m.end(), SENTENCE))
        else:
            found.append((m.end(), SENTENCE if kind == "cjk" else CLAUSE))
    if closed:
        found.append((len(text.rstrip()), SENTENCE))
    spans = [m.span() for m in _TAG.finditer(text)]
    if not closed and (m := _OPEN_TAG.search(text, max(0, len(text) - _MAX_TAG))):
        spans.append((m.start(), len(text) + 1))
    if _SPACED_HINT.search(text):
        spans += [m.span() for m in _SPACED.finditer(text)]
        if not closed and (m := _SPACED_OPEN.search(text, max(0, len(text) - 24))):
            spans.append((m.start(), len(text) + 1))
    if not spans:
        return found
    spans.sort()  # an open "<..." may contain a closed "[...]"; it sorts first
    kept, i = [], 0
    for pos, strength in found:
        while i < len(spans) and spans[i][1] <= pos:
            i += 1
        if i == len(spans) or pos <= spans[i][0]:
            kept.append((pos, strength))
    return kept


def _word_strength(text: str, pos: int, closed: bool) -> int:
    """The strength of the word boundary at the space `pos`, from the words on either side."""
    start = max(text.rfind(" ", 0, pos), text.rfind("\n", 0, pos)) + 1
    before = text[start:pos]
    end = _WS.search(text, pos + 1)
    if end is None and not closed:
        after = None  # the next word may still grow ("th" -> "that")
    else:
        after = text[pos + 1 : end.start() if end else len(text)]
    return _WORD_STRENGTH[word_cut_quality(before, after)]


def _pick(found: list[tuple[int, int]], lo: int, hi: int, weakest: int) -> int | None:
    """The strongest boundary in ``[lo, hi]``, furthest among equals."""
    best: tuple[int, int] | None = None
    for pos, strength in found:
        if lo <= pos <= hi and strength >= weakest and (best is None or (strength, pos) > best):
            best = (strength, pos)
    return None if best is None else best[1]


def _pick_word(found: list[tuple[int, int]], hi: int, *, allow_bad: bool) -> int | None:
    """The best boundary up to ``hi`` when a cut may fall between words: a clause or sentence mark if
    there is one; else the strongest word boundary, in the range's upper half if it has one as
    strong (a natural cut there rather than a tiny segment), furthest among equals. A boundary right
    after a word that governs the next (``allow_bad`` False) is no boundary at all: wait for one more
    word rather than cut "to the" | "station"."""
    if (pos := _pick(found, 1, hi, CLAUSE)) is not None:
        return pos
    weakest = WORD_BAD if allow_bad else WORD
    words = [(pos, strength) for pos, strength in found if 1 <= pos <= hi and strength >= weakest]
    if not words:
        return None
    best = max(strength for _, strength in words)
    upper = [pos for pos, strength in words if strength == best and pos >= hi // 2]
    return max(upper) if upper else max(pos for pos, strength in words if strength == best)


def _first(found: list[tuple[int, int]], lo: int, hi: int, weakest: int) -> int | None:
    """The first boundary in ``[lo, hi]`` at least as strong as ``weakest``."""
    return next((pos for pos, strength in found if lo <= pos <= hi and strength >= weakest), None)


def _hard_cut(text: str, limit: int, closed: bool, carried: int | None) -> int | None:
    """Cut a run without boundaries near ``limit``, keeping protected units whole.

    ``carried``: chars of the token at ``text[0]`` already returned by earlier hard cuts,
    or ``None`` if ``text`` is only a window, so the token at the cut cannot be short.
    Returns ``None`` when that token may still grow into a unit: wait for more text.
    """
    if not closed and (m := _OPEN_TAG.search(text, max(0, len(text) - _MAX_TAG))):
        if m.start() < limit:
            return m.start() or None
    if not closed and (m := _SPACED_OPEN.search(text, max(0, len(text) - 24))) and m.start() < limit:
        return m.start() or None  # a spaced reading may still be arriving: cut before it, or wait
    cut = limit
    spaced = _SPACED.finditer(text) if _SPACED_HINT.search(text) else ()
    for m in (*spaced, *_UNIT.finditer(text)):
        start, end = m.span()
        if start >= limit:
            continue
        if limit < end and end - start <= _MAX_UNIT:
            cut = start or end
            break
    if m := _TRAIL.match(text, cut):  # keep "3.14," together rather than a lone ","
        if (m.end() < len(text) and text[m.end()].isspace()) or (closed and m.end() == len(text)):
            cut = m.end()
    if not closed and carried is not None and not _WS.search(text, cut):
        run_start = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut)) + 1
        if len(text) - run_start + (0 if run_start else carried) <= _MAX_UNIT:
            return None
    return cut


class Segmenter:
    """Buffers streamed text and hands out segments at safe, natural cut points."""

    def __init__(self, max_buffer_chars: int = 100_000) -> None:
        self.max_buffer_chars = max_buffer_chars
        self.reset()

    def reset(self) -> None:
        """Drop everything buffered (used on cancel)."""
        # Text is ``_head[_start:] + "".join(_tail)``: appends are O(1), cuts move
        # ``_start`` instead of copying, and only a window near the front is joined.
        self._head = ""
        self._start = 0
        self._tail: list[str] = []
        self._size = 0
        self._last = ""  # last buffered char, "" when empty
        self._carried = 0  # see _hard_cut

    @property
    def pending(self) -> str:
        """Buffered text not yet returned, whitespace-normalised."""
        return self._head[self._start :] + "".join(self._tail)

    def push(self, text: str) -> None:
        """Append a delta; deltas may split words, numbers or tags anywhere."""
        text = _normalise(text)
        if not self._last or self._last.isspace():
            rest = text.lstrip()
            if "\n" in text[: len(text) - len(rest)] and self._last == " ":
                self._replace_last("\n")
            text = rest
        if not text:
            return
        if self._size + len(text) > self.max_buffer_chars:
            raise ValueError(f"segmenter buffer would exceed {self.max_buffer_chars} chars")
        self._tail.append(text)
        self._size += len(text)
        self._last = text[-1]

    def next_segment(
        self,
        min_chars: int,
        max_chars: int,
        *,
        final: bool = False,
        force: bool = False,
        clause_max: int | None = None,
    ) -> str | None:
        """Remove and return the next segment, or ``None`` to wait for more text.

        ``force``: accept word boundaries and ignore ``min_chars`` (audio about to run
        dry). ``final``: no more text is coming for now, so the buffer end is a boundary.
        ``clause_max``: a segment may run past ``max_chars`` up to this long to end at a clause
        mark rather than between words; until the text is that long, wait for one.
        """
        if max_chars < 1 or min_chars > max_chars:
            raise ValueError("need 1 <= max_chars and min_chars <= max_chars")
        limit = max(max_chars, clause_max or 0)
        text = self._peek(limit + _MAX_UNIT + 2)
        at_end = len(text) == self._size
        closed = final and at_end
        overflow = len(text) > limit
        if not text:
            return None
        if closed and len(text) <= max_chars:
            return self._cut(len(text))
        if not (final or force or overflow) and (len(text) <= min_chars or not _HINT.search(text)):
            return None  # fast path: no sentence/clause boundary can be in range
        found = _boundaries(text, limit + _GOVERNED_SLACK, closed)
        pos = _pick(found, 1 if force else min_chars, max_chars, CLAUSE)
        if pos is None and limit > max_chars:
            pos = _first(found, max_chars + 1, limit, CLAUSE)  # the clause's end, just past the budget
        if pos is None and (force or overflow or closed):
            pos = _pick_word(found, max_chars, allow_bad=False)
            if pos is None and (overflow or closed):
                pos = _pick_word(found, max_chars, allow_bad=True)
                if pos is None:
                    pos = _hard_cut(text, max_chars, closed, self._carried if at_end else None)
                else:
                    # Only governing words up to the budget ("at seven fifteen in the"): a few
                    # characters more, up to a word that governs nothing, rather than leave one
                    # hanging; wait for that word while it may still come.
                    spared = _first(found, max_chars + 1, limit + _GOVERNED_SLACK, WORD)
                    if spared is not None:
                        pos = spared
                    elif not closed and len(text) <= limit + _GOVERNED_SLACK:
                        return None
        return None if pos is None else self._cut(pos)

    @property
    def pending_chars(self) -> int:
        """``len(self.pending)``, without joining the buffer."""
        return self._size

    def _peek(self, n: int) -> str:
        if len(self._head) - self._start < n and self._tail:
            self._head = self._head[self._start :] + "".join(self._tail)
            self._start = 0
            self._tail.clear()
        return self._head[self._start : self._start + n]

    def _cut(self, pos: int) -> str:
        segment = self._head[self._start : self._start + pos]
        self._consume(pos)
        if self._peek(1).isspace():
            self._consume(1)
            self._carried = 0
        elif self._size:  # cut inside a token: remember how much of it went out
            last_ws = max(segment.rfind(" "), segment.rfind("\n"))
            self._carried = pos - last_ws - 1 if last_ws >= 0 else self._carried + pos
        return segment.strip().replace("\n", " ")

    def _consume(self, n: int) -> None:
        self._start += n
        self._size -= n
        if not self._size:
            self.reset()

    def _replace_last(self, char: str) -> None:
        if self._tail:
            self._tail[-1] = self._tail[-1][:-1] + char
        else:
            self._head = self._head[:-1] + char
        self._last = char
