"""Slow start for spending the server's allowance: the admission rate doubles every round trip (as TCP's)."""

from __future__ import annotations

import math

__all__ = ["Ramp"]

# TCP's initial window is a few segments per round trip. A refusal comes back before any generation, in the
# network's round trip: over the internet a quarter second bounds it. So: 4 requests per quarter second at the
# start, doubling every quarter second. Not the probe's measured time to headers: a streamed probe's can be a few
# milliseconds on a fast server, and a ramp doubling that often is a burst before the first 429 can come back.
_INITIAL_RATE = 16.0  # requests per second
_DOUBLING = 0.25  # seconds
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

    __slots__ = ("_start", "_tat", "active")

    def __init__(self) -> None:
        self.active = False
        self._start = 0.0
        self._tat = -math.inf  # the earliest time the next request may go out

    def begin(self, now: float) -> None:
        """Start ramping at `now`: the first response's headers said what is left."""
        if self.active:
            return
        self.active = True
        self._start = now
        self._tat = now

    def stop(self) -> None:
        """The server enforces short intervals: from now on the gates pace smoothly instead."""
        self.active = False

    def rate(self, now: float) -> float:
        """Requests per second allowed at `now`."""
        doublings = min(_MAX_DOUBLINGS, max(0.0, now - self._start) / _DOUBLING)
        return float(_INITIAL_RATE * 2.0**doublings)

    def wait_time(self, now: float) -> float:
        if not self.active:
            return 0.0
        wait = self._tat - now
        return 0.0 if wait <= _TOLERANCE else wait

    def take(self, now: float) -> None:
        if self.active:
            self._tat = max(self._tat, now) + 1.0 / self.rate(now)
