"""Measurements shared by every mode, and the report: a table on stdout, the full data as JSON.

Definitions (all times from `time.perf_counter()` on the client):

- *jitter*: for consecutive frames of one stream, |arrival interval − duration of the earlier
  frame| (durations from byte counts), in ms;
- *underrun*: playback starts at the stream's first frame and runs continuously at real time;
  a frame arriving more than `LATE_TOLERANCE_S` after its scheduled play time is late. The
  player then stalls until it arrives, so later frames are scheduled from there (one stall
  counts once); `late_ms` sums those stalls;
- *RTF*: audio seconds received / wall seconds from the first to the last frame.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import percentile

LATE_TOLERANCE_S = 0.02


@dataclass
class FrameTrace:
    """Arrival times and sizes of one audio stream (one context, request or utterance)."""

    bytes_per_second: float
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    total_bytes: int = 0

    def add(self, now: float, size: int) -> None:
        self.arrivals.append((now, size))
        self.total_bytes += size

    @property
    def first_at(self) -> float | None:
        return self.arrivals[0][0] if self.arrivals else None

    @property
    def last_at(self) -> float | None:
        return self.arrivals[-1][0] if self.arrivals else None

    @property
    def audio_s(self) -> float:
        return self.total_bytes / self.bytes_per_second

    def audio_between(self, start: float, end: float) -> float:
        """Seconds of audio that arrived in [start, end)."""
        return sum(size for now, size in self.arrivals if start <= now < end) / self.bytes_per_second

    def jitter_ms(self) -> list[float]:
        out = []
        for (t0, size0), (t1, _) in zip(self.arrivals, self.arrivals[1:], strict=False):
            out.append(abs((t1 - t0) - size0 / self.bytes_per_second) * 1e3)
        return out

    def stalls_s(self, tolerance_s: float = LATE_TOLERANCE_S) -> list[float]:
        """How late each late frame was, under real-time playback from the first frame.

        The player waits for a late frame, then plays on: one stall counts once.
        """
        if not self.arrivals:
            return []
        start, played, stalls = self.arrivals[0][0], 0.0, []
        for now, size in self.arrivals:
            late = now - (start + played)
            if late > tolerance_s:
                stalls.append(late)
                start += late
            played += size / self.bytes_per_second
        return stalls

    def underruns(self, tolerance_s: float = LATE_TOLERANCE_S) -> tuple[int, float]:
        """(late frames, total stall ms) under continuous real-time playback from the first frame."""
        stalls = self.stalls_s(tolerance_s)
        return len(stalls), sum(stalls) * 1e3


def rtf(traces: Sequence[FrameTrace]) -> float | None:
    """Audio seconds over the wall seconds between the first and the last frame of `traces`."""
    times = [t for trace in traces for t in (trace.first_at, trace.last_at) if t is not None]
    wall = max(times) - min(times) if times else 0.0
    return sum(trace.audio_s for trace in traces) / wall if wall > 0 else None


@dataclass
class Row:
    """One table row: a session/client/call, or the aggregate of all of them."""

    name: str
    items: int
    audio_s: float
    ttfa_ms: list[float]
    jitter_ms: list[float]
    underruns: int
    late_ms: float
    rtf: float | None
    errors: int
    notes: str = ""

    @classmethod
    def aggregate(cls, rows: Sequence[Row], notes: str = "") -> Row:
        """Pooled TTFA and jitter samples, summed counts, mean RTF of the rows."""
        rtfs = [r.rtf for r in rows if r.rtf is not None]
        return cls(
            name="all", items=sum(r.items for r in rows), audio_s=sum(r.audio_s for r in rows),
            ttfa_ms=[v for r in rows for v in r.ttfa_ms], jitter_ms=[v for r in rows for v in r.jitter_ms],
            underruns=sum(r.underruns for r in rows), late_ms=sum(r.late_ms for r in rows),
            rtf=sum(rtfs) / len(rtfs) if rtfs else None, errors=sum(r.errors for r in rows), notes=notes,
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "items": self.items, "audio_s": round(self.audio_s, 3),
            "ttfa_p50_ms": pct(self.ttfa_ms, 50), "ttfa_p95_ms": pct(self.ttfa_ms, 95),
            "jitter_p50_ms": pct(self.jitter_ms, 50), "jitter_p99_ms": pct(self.jitter_ms, 99),
            "jitter_max_ms": round(max(self.jitter_ms), 2) if self.jitter_ms else None,
            "underruns": self.underruns, "late_ms": round(self.late_ms, 1),
            "rtf": None if self.rtf is None else round(self.rtf, 3), "errors": self.errors, "notes": self.notes,
        }  # fmt: skip


def pct(values: Sequence[float], p: float) -> float | None:
    return round(percentile(list(values), p), 2) if values else None


COLUMNS = ("name", "n", "audio s", "TTFA p50", "TTFA p95", "jitter p50", "jitter p99",
           "underruns", "late ms", "RTF", "errors", "notes")  # fmt: skip


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def render_table(title: str, rows: Sequence[Row], total: Row) -> str:
    """A Markdown table: one line per row, then the aggregate."""
    lines = [title, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in [*rows, total]:
        s = row.summary()
        cells = [row.name if row is not total else "**all**", str(row.items), _cell(row.audio_s),
                 _cell(s["ttfa_p50_ms"]), _cell(s["ttfa_p95_ms"]), _cell(s["jitter_p50_ms"]),
                 _cell(s["jitter_p99_ms"]), str(row.underruns), _cell(row.late_ms, 0), _cell(row.rtf, 2),
                 str(row.errors), row.notes]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def emit(text: str) -> None:
    """The report's only output channel: stdout."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
