"""The listener's playback clock, and the pacing that keeps a stream a little ahead of it.

Playback starts when the first audio is sent and proceeds in real time. Audio
sent later than the moment playback would reach it is an underrun: the
listener heard a gap, and playback resumes from the new audio. `BurstPacer`
decides when the next frame may go so that a stream stays at most `lead_s`
ahead. Pure: times are passed in, so tests drive both with a fake clock.
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

    def truncate(self, now: float) -> None:
        """The listener dropped what it had not played (a barge-in: `clear`, a flushed buffer): what
        follows may go at once instead of queueing behind audio nobody will hear."""
        if self.started_at is not None:
            self.sent_s = self.played_s(now)

    def ends_at(self) -> float | None:
        """When playback of everything sent ends, or ended (in the past while the listener waits);
        None before any audio. A job deadline: it stands still while no audio is sent."""
        return None if self.started_at is None else self.started_at + self._gap_s + self.sent_s


BURST_FRACTION = 0.2
"""A paced stream is topped up in bursts of this share of its lead (at least one frame)."""


class BurstPacer:
    """When the next frame may go: never more than `lead_s` ahead of playback, topped up in bursts.

    Once the lead is full the stream waits until a fifth of it (at least one frame) has played,
    then sends that much at once: one wakeup per burst instead of one per 20 ms frame, which was
    a third of the event loop's time per frame (docs/BENCHMARKS.md). With Twilio's 100 ms lead a
    burst is one frame: real-time pacing, as Twilio wants it. `lead_s` None: no pacing at all.
    """

    _EPS = 1e-9

    def __init__(self, lead_s: float | None, frame_s: float) -> None:
        if frame_s <= 0:
            raise ValueError("frame_s must be > 0")
        self.lead_s = lead_s
        self.frame_s = frame_s
        self.cap_s = max(lead_s or 0.0, frame_s)
        """The lead after a burst: `lead_s`, or one frame if the lead is shorter than a frame."""
        self.refill_at_s = self.cap_s - max(frame_s, BURST_FRACTION * self.cap_s)
        self._refilling = False

    def wait_s(self, ahead_s: float) -> float:
        """0: send the next frame now; else ask again after this long. `ahead_s`: audio sent or
        queued that the listener has not heard yet."""
        if self.lead_s is None:
            return 0.0
        if self._refilling:
            if ahead_s > self.refill_at_s + self._EPS:
                return ahead_s - self.refill_at_s
            self._refilling = False
            return 0.0
        if ahead_s + self.frame_s <= self.cap_s + self._EPS:
            return 0.0
        self._refilling = True
        return max(ahead_s - self.refill_at_s, self._EPS)
