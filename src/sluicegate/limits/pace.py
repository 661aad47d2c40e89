"""Smooth pacing of one bucket once the server has shown that it enforces short intervals (AIMD on tokens/s).

The pace is kept in tokens per second, not as a multiple of the learnt rate: the window is still being learnt while
the pace runs, and a pace that was measured (what the server refused) must not jump when the estimate moves.

- It starts at half the rate that was refused, as TCP halves its window after a loss; never below the learnt rate,
  and no faster than half way from it to the fastest refill the reset headers allow (`fastest`): a pace above
  `fastest` cannot last (the server's short-interval bucket only hides that for a while), and the truth lies
  between the two. A ramp that was refused at 20 times the rate (a real minute) would otherwise pay one refusal
  per step back. Half of what was refused is a guess, not a pace proven good: only a second held back without a
  refusal proves one. It starts empty (as the server's short-interval bucket is after a refusal), and so does
  every step back.
- While the pace is what holds requests back and the server's bucket does not drain (what it says is left does
  not fall), it probes upwards: a bucket that never drains teaches nothing about its window, so the learnt rate
  may be too slow, and only sending faster can show it. (Waiting for the bucket to be full again would waste the
  seconds it takes to refill what the refusals cost, at a pace already known to be too slow.) A pace that ran a
  whole second that way, and ten requests, without a refusal is good (at one request a second, one second proves
  nothing: a bucket drains too slowly to show it); the next probe is half way to the slowest refused pace (a
  binary search), or twice as fast while none was refused. It stops when the two are within a fifth of each
  other, so a run pays a handful of refusals, not one per probe, and never probes above `fastest`: once the reset
  headers pin the window within a fifth there is nothing left to find.
- A refusal at a pace above the learnt rate goes back to the last good pace. At the learnt rate itself there is
  nothing to step back from: the caller pauses as the server asks.
"""

from __future__ import annotations

import math

from .bucket import TokenBucket

__all__ = ["Pace", "PaceSearch"]

_SECONDS = 0.05  # the pace lets this much of its rate through at once (and always one request)
_LATE = 0.05  # of one request's interval: a request let out this late does not push back the next one
_MAX_PROBE = 16.0  # with no refusal to bound it, probing stops at this multiple of the learnt rate
_SUSTAIN = 1.0  # seconds a pace must run, holding requests back, without a refusal to count as good
_SUSTAIN_REQUESTS = 10.0  # ... and at least this many of its largest requests: a slow pace proves little a second
_CLOSE = 1.2  # probing stops when the slowest refused pace is within this factor of the good one
_STEP_BACK = 1.5  # a refusal with no good pace known yet steps back by this factor


class PaceSearch:
    """Where the pace should be, in tokens per second: the AIMD search above (`start`, `step_back`, `probe`),
    without a bucket, so the shared pool can run the same search on a pace it keeps in Redis."""

    __slots__ = ("good", "mark", "refused", "since", "target")

    def __init__(self) -> None:
        self.target = 0.0  # tokens per second (below the learnt rate: the learnt rate)
        self.good = 0.0  # the fastest pace that ran a whole second without a refusal
        self.refused = math.inf  # the slowest pace the server refused
        self.since: float | None = None  # since when the pace has held requests back without the bucket draining
        self.mark = 0.0  # what the server said was left at `since`

    def rate(self, learnt: float) -> float:
        """Tokens per second the pace lets through."""
        return max(learnt, self.target)

    def start(self, sent: float, learnt: float, *, fastest: float = math.inf) -> None:
        """A short-interval refusal of what went out at `sent` tokens per second: pace at half of it, no faster
        than half way from `learnt` to `fastest` (the fastest refill the headers allow)."""
        if sent > 0:
            self.refused = min(self.refused, sent)
            # Between the learnt rate (the slowest refill the headers allow) and `fastest`, start half way: the top
            # is refused whenever the truth is below it, which costs a 429 and a step back that may still be above.
            self.target = min(sent / 2.0, fastest if fastest == math.inf else (learnt + fastest) / 2.0)
        self.since = None

    def step_back(self, learnt: float) -> bool:
        """Refused while paced: back to the last good pace. False at the learnt rate (nothing to step back from)."""
        current = self.rate(learnt)
        if current <= learnt:
            return False
        self.refused = min(self.refused, current)
        self.target = self.good if 0.0 < self.good < current else current / _STEP_BACK
        self.since = None
        return True

    def probe(
        self, learnt: float, now: float, *, held: bool, remaining: float, slack: float, fastest: float, unit: float
    ) -> bool:
        """A response saying `remaining` is left (give or take `slack`); `held`: the pace made a request wait since
        the last one; `unit`: the largest request paced. True when the target moved up."""
        if not held or (self.since is not None and remaining < self.mark - slack):
            self.since = None
            return False
        if self.since is None:
            self.since, self.mark = now, remaining
            return False
        current = self.rate(learnt)
        if now - self.since < max(_SUSTAIN, _SUSTAIN_REQUESTS * unit / current):
            return False
        self.good = max(self.good, current)
        self.since, self.mark = now, remaining
        ceiling = min(self.refused, fastest)
        if ceiling <= current * _CLOSE:
            return False
        # Nothing bounds it: double; else a binary search below the bound.
        target = min(2.0 * current, learnt * _MAX_PROBE) if ceiling == math.inf else (current + ceiling) / 2.0
        if target <= current:
            return False
        self.target = target
        return True


class Pace:
    """The pacing bucket of one gate and the rate it runs at (`PaceSearch`)."""

    __slots__ = ("_held", "_unit", "bucket", "search")

    def __init__(self) -> None:
        self.bucket: TokenBucket | None = None
        self.search = PaceSearch()
        self._held = False  # the pace made a request wait since the last response
        self._unit = 0.0  # the largest request paced so far

    def rate(self, learnt: float) -> float:
        """Tokens per second the pace lets through."""
        return self.search.rate(learnt)

    def start(self, sent: float, learnt: float, now: float, *, fastest: float = math.inf, request: float = 0.0) -> None:
        """A short-interval refusal of a `request` of this size, of what went out at `sent` tokens per second: pace
        at half of it, no faster than `fastest` (the fastest refill the headers allow)."""
        self.search.start(sent, learnt, fastest=fastest)
        self.apply(learnt, now)
        self._empty(now, request)

    def refused(self, learnt: float, now: float, request: float = 0.0) -> bool:
        """Refused while paced: back to the last good pace. False at the learnt rate (nothing to step back from)."""
        if not self.search.step_back(learnt):
            return False
        self.apply(learnt, now)
        self._empty(now, request)
        return True

    def _empty(self, now: float, request: float) -> None:
        """The server's short-interval bucket just refused a request: it is empty, so the pace's is too. A full
        one would let the next request out at once, into that same empty bucket: a second 429 for one refusal.
        The bucket holds a little more than the refused `request` (`apply`), so empty, the next one that size
        waits a whole interval of the pace."""
        if self.bucket is not None:
            self._grow(request, now)
            self.bucket.set_level(min(0.0, self.bucket.level(now)), now)

    def probe(self, learnt: float, now: float, *, remaining: float, slack: float, fastest: float = math.inf) -> None:
        """A response saying `remaining` is left (give or take `slack`): after a whole second in which the pace held
        requests back while what is left did not fall, that pace is good; try a faster one, up to `fastest`."""
        held, self._held = self._held, False
        moved = self.search.probe(
            learnt, now, held=held, remaining=remaining, slack=slack, fastest=fastest, unit=self._unit
        )
        if moved:
            self.apply(learnt, now)

    def apply(self, learnt: float, now: float) -> None:
        """Resize the pacing bucket to the pace (after it, or the learnt rate, changed)."""
        self._resize(self.rate(learnt), now)

    def _resize(self, rate: float, now: float) -> None:
        if rate <= 0:
            return
        # Where one request is more than `_SECONDS` of the pace, the bucket still holds a little more than it, so a
        # request let out late (a timer, a busy event loop) is made up by the next: capped at exactly one request,
        # every late wake-up would be lost, a few percent of a pace set right at the server's refill.
        capacity = max(rate * _SECONDS, self._unit * (1.0 + _LATE))
        if self.bucket is None:
            self.bucket = TokenBucket(capacity, period=capacity / rate, now=now, initial=capacity)
        else:
            level = self.bucket.level(now)
            self.bucket.resize(capacity, period=capacity / rate, now=now)
            self.bucket.set_level(level, now)  # a larger bucket must not add a burst of its own

    def wait_time(self, amount: float, now: float, *, behind: float) -> float:
        """Seconds until the pace lets `amount` through; `behind` is how long the gate's other bucket holds it
        anyway (the pace is holding requests back only where it adds to that)."""
        if self.bucket is None:
            return 0.0
        wait = self.bucket.wait_time(amount, now)
        if wait > behind:
            self._held = True
        return wait

    def take(self, amount: float, now: float) -> None:
        if self.bucket is not None:
            self._grow(amount, now)
            self.bucket.take(amount, now)

    def _grow(self, request: float, now: float) -> None:
        """A request larger than any before: the bucket must hold a little more than it (`apply`)."""
        if self.bucket is not None and request > self._unit:
            self._unit = request
            self._resize(self.bucket.rate, now)
