"""Slow start for spending the server's allowance: the admission rate doubles every round trip (as TCP's)."""

from __future__ import annotations

import math

__all__ = ["Ramp"]

_INITIAL_WINDOW = 4  # requests per round trip at the start, as TCP's initial window of a few segments
# A refusal comes back before any generation: its round trip is the network's, not an answer's latency. Over the
# internet a quarter second bounds it, so the ramp doubles at least that often, whatever the answers' latency.
_MAX_ROUND_TRIP = 0.25
_MAX_DOUBLINGS = 40.0  # past this the ramp never binds; the cap keeps 2**x finite
# A waiter woken by its timer finds itself a hair early (timer and clock rounding): due within this it goes now
# instead of sleeping again for microseconds. `take` spaces from the due time, so the rate is unchanged.
_TOLERANCE = 0.001


class Ramp:
    """A cap on requests per second that starts at a few per round trip and doubles every round trip.

    The buckets hold what the server says is left (a minute's worth, at the start); the ramp decides how fast
    that goes out. A server that enforces its limit over short intervals ("60 RPM may be enforced as 1 request
    per second") answers the first too-fast requests with 429s within one round trip, while only a few are
    over; then the limiter stops ramping and paces smoothly. Admission is spaced (GCRA: theoretical arrival
    time), so even a fast ramp never sends a burst of more than one request at once.
    """

    __slots__ = ("_rtt", "_start", "_tat", "active")

    def __init__(self) -> None:
        self.active = False
        self._start = 0.0
        self._rtt = 1.0
        self._tat = -math.inf  # the earliest time the next request may go out

    def begin(self, now: float, round_trip: float) -> None:
        """Start ramping at `now`; `round_trip` is the first response's time to headers."""
        if self.active:
            return
        self.active = True
        self._start = now
        self._rtt = min(_MAX_ROUND_TRIP, max(round_trip, 0.01))
        self._tat = now

    def stop(self) -> None:
        """The server enforces short intervals: from now on the gates pace smoothly instead."""
        self.active = False

    def rate(self, now: float) -> float:
        """Requests per second allowed at `now`."""
        doublings = min(_MAX_DOUBLINGS, max(0.0, now - self._start) / self._rtt)
        return float(_INITIAL_WINDOW / self._rtt * 2.0**doublings)

    def wait_time(self, now: float) -> float:
        if not self.active:
            return 0.0
        wait = self._tat - now
        return 0.0 if wait <= _TOLERANCE else wait

    def take(self, now: float) -> None:
        if self.active:
            self._tat = max(self._tat, now) + 1.0 / self.rate(now)
