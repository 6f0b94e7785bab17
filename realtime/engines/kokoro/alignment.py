"""Word timings from the model's phoneme durations. Pure.

The model is given the phonemes of a whole segment (espeak phonemizes words in context: "a" is `ɐ`
in a sentence but `ˈeɪ` alone, "of the" comes out as one word `ʌvðə`), so which phoneme belongs to
which word of the text is not in its output. Each word is also phonemized alone, and the segment's
phonemes are aligned to those words' phonemes joined (`difflib`): a phoneme inside a matching
block belongs to the word it matched, one inside a differing block to the word at the same relative
place, one with no counterpart to the word before it. Owners never go backwards, so words come out
in order, each once. A word then lasts from its first phoneme's first frame to its last phoneme's
last frame, its punctuation included (the pause a comma makes belongs to the word before it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..base import WordTiming

NO_WORD = -1
WORD = re.compile(r"\S+")
SPOKEN = re.compile(r"\w")


@dataclass(frozen=True)
class TextWord:
    """A word of the segment text: a run of non-space characters with a letter or digit in it."""

    text: str
    start: int
    end: int


def text_words(text: str) -> list[TextWord]:
    """The segment's words with their character offsets (punctuation-only runs are not words)."""
    return [TextWord(m.group(), m.start(), m.end()) for m in WORD.finditer(text) if SPOKEN.search(m.group())]


def phoneme_owners(phonemes: str, word_phonemes: Sequence[str]) -> list[int]:
    """For each character of `phonemes`, the index of the word it belongs to (`NO_WORD` for spaces),
    never decreasing along the string."""
    ref = "".join(word_phonemes)
    ref_owner = [i for i, w in enumerate(word_phonemes) for _ in w]
    owners: list[int | None] = [None] * len(phonemes)
    matcher = difflib.SequenceMatcher(None, phonemes, ref, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                owners[i1 + k] = ref_owner[j1 + k]
        elif tag == "replace":
            for k in range(i2 - i1):
                owners[i1 + k] = ref_owner[j1 + min(k * (j2 - j1) // (i2 - i1), j2 - j1 - 1)]
    result: list[int] = []
    last = NO_WORD
    for char, owner in zip(phonemes, owners, strict=True):
        if char.isspace():
            result.append(NO_WORD)
            continue
        if owner is None:
            owner = max(last, 0) if word_phonemes else NO_WORD
        last = max(last, owner)
        result.append(last)
    return result


def word_timings(
    words: Sequence[TextWord], owners: Sequence[int], frames: np.ndarray, *, first: int, hop: int,
    sample_rate: int, origin: int, final: bool = True,
) -> list[WordTiming]:  # fmt: skip
    """Timings of the words whose first phoneme is in one model call.

    `owners[k]` is the word of the call's k-th phoneme; `frames` the call's durations, the two pad
    positions included; `first` the first word not yet timed (a word cut across two calls is timed
    in the first); `origin` where the call's frame 0 lies in the job's audio, in samples (negative
    when its leading silence was trimmed); `final`: the job's last call, which also times the words
    left without a phoneme at its end."""
    ends = np.cumsum(frames[1 : len(owners) + 1])
    starts = ends - frames[1 : len(owners) + 1]
    spans: dict[int, tuple[int, int]] = {}
    for k, owner in enumerate(owners):
        if owner < first:
            continue
        start, end = spans.get(owner, (int(starts[k]), int(ends[k])))
        spans[owner] = (min(start, int(starts[k])), max(end, int(ends[k])))
    last = len(words) - 1 if final else max(spans, default=first - 1)
    if last < first:
        return []
    lead = int(frames[0])

    def seconds(frame: int) -> float:
        return max(0.0, (origin + (lead + frame) * hop) / sample_rate)

    timings: list[WordTiming] = []
    last_end = seconds(min((s for s, _ in spans.values()), default=int(ends[-1]) if len(ends) else 0))
    for index in range(first, last + 1):
        word = words[index]
        if index in spans:
            start, end = spans[index]
            start_s, end_s = max(seconds(start), last_end), seconds(end)
        else:  # no phoneme of its own (merged away): an instant where it would be
            start_s = end_s = last_end
        end_s = max(end_s, start_s)
        timings.append(WordTiming(word.text, start_s, end_s, word.start, word.end))
        last_end = end_s
    return timings
