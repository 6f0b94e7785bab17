"""The listener's playback clock: how far ahead we are, and when they ran dry.

Playback starts when the first audio is sent and proceeds in real time. Audio
sent later than the moment playback would reach it is an underrun: the
listener heard a gap, and playback resumes from the new audio. A pacer uses
`lead_s` to send at most `max_lead_s` ahead of playback. Pure: times are
passed in, so tests drive it with a fake clock.
"""

from __future__ import annotations


class PlayoutClock:
    def __init__(self, underrun_tolerance_s: float = 0.005) -> None:
        self.started_at: float | None = None
        self.sent_s = 0.0
        """Audio handed to the transport so far."""
        self._gap_s = 0.0
        """Silence the listener heard in underruns, which shifts playback later."""
        self.underruns = 0
        self.underrun_s = 0.0
        self._tolerance = underrun_tolerance_s

    def played_s(self, now: float) -> float:
        """Audio the listener has heard by `now` (never more than was sent)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, min(self.sent_s, now - self.started_at - self._gap_s))

    def lead_s(self, now: float) -> float:
        """Audio sent but not yet played."""
        return self.sent_s - self.played_s(now)

    def on_send(self, now: float, duration_s: float) -> None:
        """Account for `duration_s` of audio leaving at `now`."""
        if duration_s <= 0:
            return
        if self.started_at is None:
            self.started_at = now
        else:
            late = (now - self.started_at - self._gap_s) - self.sent_s
            if late > self._tolerance:
                self.underruns += 1
                self.underrun_s += late
                self._gap_s += late
        self.sent_s += duration_s

    def wait_s(self, now: float, max_lead_s: float | None) -> float:
        """How long to hold the next audio so the lead stays within `max_lead_s` (None: no limit)."""
        if max_lead_s is None or self.started_at is None:
            return 0.0
        return max(0.0, self.lead_s(now) - max_lead_s)

    def ends_at(self) -> float | None:
        """When playback of everything sent ends, or ended (in the past while the listener waits);
        None before any audio. A job deadline: it stands still while no audio is sent."""
        return None if self.started_at is None else self.started_at + self._gap_s + self.sent_s
