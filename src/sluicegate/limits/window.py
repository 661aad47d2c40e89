"""Learning a bucket's refill window (a minute, a day, a second, an emulator's minute) from rate-limit headers.

A bucket of `limit` tokens refills in `window` seconds from empty to full. Two kinds of evidence bound it:

- reset: a bucket missing `M` tokens is full again in `R` seconds, so `window = limit * R / M`. `R` is coarse
  (Anthropic sends whole-second timestamps) and so is `M` (token `remaining` rounded to thousands), so each
  response gives an interval. The intersection over many responses narrows, because the rounding falls at a
  different phase each time. A full or nearly full bucket says almost nothing and is skipped. A reset given as
  a moment (a timestamp) is counted from whenever the server counted `M`: at our reading at the latest, at the
  request's admission at the earliest (the API does not say which; a server computing its headers with its
  limit check does the latter). Read as if counted at our reading, an answer's latency would shorten `R`:
  windows 18% short at a 6 s minute, seen. So `R`'s upper end reaches back to the admission (`stale`); the
  fastest answers (streams' headers come at their first byte) keep the intersection tight.
- flow: between two responses the level changed by what refilled minus what was consumed. Our own consumption
  is known, so `refill >= (remaining2 - remaining1) + ours`: a lower bound on the rate (other clients, a bucket
  that hit full or a debt shown as 0 hide refill; they never add any). Precise over long spans, whatever the
  reset rounding. But a server counts `remaining` at a moment we do not see, somewhere between the request's
  admission and our reading of its answer (at admission, at the answer's end, late on a busy loop), and
  whatever we took in that gap may or may not be in the count. Read as if counted at our reading, a burst of
  admissions in the gap looks like refill: windows 4-10% short, seen in the start's burst. So each end is
  taken at its least favourable moment: ours since the first response counted at the second one's admission,
  the span from the first one's admission to our reading of the second. Loose over short spans, valid at any.

The estimate is the longest window consistent with both (the slowest rate): never faster than the server.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Window"]

_KEEP = 64  # reset intervals remembered to recover from one that contradicts the others
_FLOW_MIN_SPAN = 0.25  # seconds: shorter spans are dominated by in-flight timing at their ends
# Flow bounds kept: each is valid, and how loose depends on what we took while its answer was in flight, so the
# tightest recent one is used; a bounded few, so that a limit that changed is followed.
_FLOW_KEEP = 16


class Window:
    """What the headers say about one bucket's window, in seconds."""

    __slots__ = ("_anchor", "_flows", "_hi", "_intervals", "_lo")

    def __init__(self) -> None:
        self._intervals: deque[tuple[float, float]] = deque(maxlen=_KEEP)
        self._lo = 0.0
        self._hi = math.inf
        self._flows: deque[float] = deque(maxlen=_FLOW_KEEP)
        # (the earliest the server may have counted it, remaining, our consumption by our reading of it)
        self._anchor: tuple[float, float, float] | None = None

    def observe_reset(
        self,
        limit: float,
        remaining: float,
        reset_in: float,
        *,
        remaining_error: float,
        reset_error: float,
        stale: float = 0.0,
    ) -> None:
        """One response's `limit`, `remaining` and `reset_in`, with how coarse the last two are; `stale`: how much
        earlier than our reading the server may have counted them (a moment's `reset_in` is that much longer)."""
        if limit <= 0 or not math.isfinite(reset_error):
            return
        missing = limit - remaining
        missing_lo = missing - remaining_error
        # `remaining` 0 may hide a debt: the bucket may be missing any amount above the limit.
        missing_hi = math.inf if remaining <= 0 else missing + remaining_error
        reset_lo, reset_hi = max(0.0, reset_in - reset_error), reset_in + reset_error + max(0.0, stale)
        lo = 0.0 if missing_hi == math.inf else limit * reset_lo / missing_hi
        hi = limit * reset_hi / missing_lo if missing_lo > 0 else math.inf
        if lo <= 0.0 and hi == math.inf:
            return  # a full bucket, or one too close to full to tell anything
        self._intervals.append((lo, hi))
        lo, hi = max(self._lo, lo), min(self._hi, hi)
        if lo <= hi:
            self._lo, self._hi = lo, hi
            return
        # A contradiction (a skewed clock, a changed limit): keep the newest consistent run of responses.
        self._lo, self._hi = 0.0, math.inf
        for i_lo, i_hi in reversed(self._intervals):
            if max(self._lo, i_lo) > min(self._hi, i_hi):
                break
            self._lo, self._hi = max(self._lo, i_lo), min(self._hi, i_hi)

    def observe_flow(
        self,
        limit: float,
        remaining: float,
        consumed: float,
        now: float,
        *,
        remaining_error: float,
        since: float | None = None,
        consumed_since: float | None = None,
    ) -> None:
        """`remaining`, counted by the server between `since` (the request's admission; default `now`) and `now`,
        when we had consumed `consumed_since` (at `since`) and `consumed` (at `now`) in total from this bucket."""
        if limit <= 0:
            return
        if remaining >= limit - remaining_error:
            self._anchor = None  # full: refill was capped, the next span starts below full
            return
        since = now if since is None else min(since, now)
        consumed_since = consumed if consumed_since is None else min(consumed_since, consumed)
        if self._anchor is None:
            self._anchor = (since, remaining, consumed)
            return
        t0, r0, c0 = self._anchor
        span = now - t0
        if span < _FLOW_MIN_SPAN:
            return
        refilled = (remaining - r0) + (consumed_since - c0) - 2 * remaining_error
        if refilled > 2 * remaining_error:
            self._flows.append(limit * span / refilled)

    def seconds(self) -> float | None:
        """The window to pace by: the longest consistent with what was seen; None while nothing bounds it."""
        hi = min(self._hi, min(self._flows, default=math.inf))
        if hi == math.inf:
            return None
        return max(hi, self._lo)

    @property
    def bounds(self) -> tuple[float, float]:
        """(shortest, longest) window the reset headers allow so far."""
        return self._lo, self._hi
