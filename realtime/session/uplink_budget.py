"""How much uplink audio a session may feed its VAD: a token bucket in audio seconds.

VAD runs on the event loop. A real microphone or phone line delivers audio in
real time, but a client can send it far faster (a 1 MiB μ-law frame is two
minutes of audio and ~28 ms of VAD), taking the loop from every other session.
The bucket refills at `rate` audio seconds per second up to `burst_s`; audio
beyond it is dropped, not queued. Pure: times are passed in.
"""

from __future__ import annotations

UPLINK_RATE = 2.0
"""Audio seconds per wall second a client may sustain: real time, with room for catching up."""
UPLINK_BURST_S = 5.0
"""Audio a client may send at once (after a network stall, say) on top of the rate."""


class UplinkBudget:
    def __init__(self, now: float, rate: float = UPLINK_RATE, burst_s: float = UPLINK_BURST_S) -> None:
        if rate <= 0 or burst_s <= 0:
            raise ValueError("rate and burst_s must be > 0")
        self.rate = rate
        self.burst_s = burst_s
        self._credit = burst_s
        self._at = now
        self.dropped_s = 0.0
        """Audio refused so far."""

    def take(self, now: float, audio_s: float) -> bool:
        """Spend `audio_s` if the budget holds it; False (and nothing spent) if not."""
        self._credit = min(self.burst_s, self._credit + max(0.0, now - self._at) * self.rate)
        self._at = now
        if audio_s > self._credit:
            self.dropped_s += audio_s
            return False
        self._credit -= audio_s
        return True
