"""Where the server cut an answer into segments, and how many cuts fall mid-phrase.

Every segment is synthesized as its own utterance, so the listener hears a phrase end at every cut.
A cut at a clause mark (`,` `;` `:` `.` `?` `!`, or `—`) sounds natural; a cut between two words
of a phrase ("I can help with" | "that.") does not. A cut is *mid-phrase* when its segment ends in
a letter or digit (closing quotes and brackets looked through) and is not the context's last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from realtime.session.phrasing import ends_mid_phrase


def mid_phrase_cuts(segments: Sequence[str]) -> list[str]:
    """The segments of one context (in order) that end mid-phrase; its last one never counts."""
    return [s for s in segments[:-1] if ends_mid_phrase(s)]


@dataclass
class PhrasingStats:
    segments: int = 0
    cuts: int = 0
    """Segment ends that are not a context's end."""
    mid_phrase: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, segments: Sequence[str], max_examples: int = 8) -> None:
        bad = mid_phrase_cuts(segments)
        self.segments += len(segments)
        self.cuts += max(0, len(segments) - 1)
        self.mid_phrase += len(bad)
        for s in bad:
            if len(self.examples) < max_examples:
                self.examples.append(s[-40:])

    @property
    def share(self) -> float:
        """Mid-phrase cuts per segment (the issue's measure); 0 without segments."""
        return self.mid_phrase / self.segments if self.segments else 0.0

    def summary(self) -> dict[str, object]:
        return {"segments": self.segments, "cuts": self.cuts, "mid_phrase": self.mid_phrase,
                "mid_phrase_share": round(self.share, 4), "examples": self.examples}  # fmt: skip

    @classmethod
    def of(cls, contexts: Iterable[Sequence[str]]) -> PhrasingStats:
        stats = cls()
        for segments in contexts:
            stats.add(segments)
        return stats
