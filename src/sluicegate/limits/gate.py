"""One rate-limit dimension as the limiter models it: the server's bucket, its learnt window and smooth pacing."""

from __future__ import annotations

import bisect
import math
from collections import deque

from .._models import BucketView
from .._stats import Binding
from .bucket import TokenBucket
from .pace import Pace
from .window import Window

__all__ = ["Gate"]

_DEFAULT_WINDOW = 60.0  # until the headers say otherwise, limits are per minute
_START_SECONDS = 1.0  # before the server has said what is left: one second of refill
_RECENT = 0.25  # seconds of sending that a short-interval refusal judges (the ramp's doubling time)
_TAKES_KEPT = 4096  # recent admissions remembered, to tell how stale a response's `remaining` may be


class Gate:
    """A mirror of the server's bucket (capacity `limit`, refilled over the learnt window, synced to every
    response's `remaining`), plus a pacing bucket once the server has shown it enforces short intervals."""

    __slots__ = (
        "_rate_since",
        "_synced",
        "_taken",
        "_takes",
        "consumed",
        "counted_before",
        "given",
        "limit",
        "mirror",
        "name",
        "override",
        "pace",
        "smooth",
        "window",
    )

    def __init__(self, name: Binding, given: float | None, *, override: float | None, smooth: bool) -> None:
        self.name = name
        self.given = given  # the user's limit is a ceiling: headers may lower it, never raise it
        self.override = override  # the user's window length (`minute=`), instead of the learnt one
        self.limit: float | None = None  # tokens per window, in force now
        self.window = Window()
        self.mirror: TokenBucket | None = None
        self.pace: Pace | None = Pace() if smooth else None
        self.smooth = smooth
        self.consumed = 0.0  # net tokens we charged (takes minus refunds): the flow evidence's "ours"
        self._taken = 0.0  # what admissions took, corrected by settles the mirror still needed
        # (time, taken before the take, consumed before the take)
        self._takes: deque[tuple[float, float, float]] = deque(maxlen=_TAKES_KEPT)
        # Requests admitted before this had their charge replaced by the server's own count when the mirror was
        # set to what a response said is left: correcting them again at settle would count the difference twice.
        self.counted_before = -math.inf
        self._synced = False  # the first response sets the level: start from what the server says is there
        self._rate_since = 0.0  # since when the synced mirror has refilled at the rate in force

    # -- rates ---------------------------------------------------------------------------------------------

    def seconds(self) -> float:
        """The window in force: the override, else the learnt one, else a minute."""
        if self.override is not None:
            return self.override
        learnt = self.window.seconds()
        return _DEFAULT_WINDOW if learnt is None else learnt

    def rate(self) -> float | None:
        """Tokens per second the server refills (None while no limit is known)."""
        return None if self.limit is None else self.limit / self.seconds()

    def fastest(self) -> float:
        """The fastest refill the evidence allows, tokens per second: the user's window if given, else the
        shortest window the reset headers allow (unbounded while they bound nothing)."""
        if self.limit is None:
            return math.inf
        shortest = self.override if self.override is not None else self.window.bounds[0]
        return self.limit / shortest if shortest > 0 else math.inf

    def set_limit(self, limit: float, now: float, *, initial: float | None = None) -> None:
        """The capacity per window; a new mirror starts at `initial` (default: one second of refill)."""
        period = self.seconds()
        if self.mirror is None:
            start = min(limit, limit / period * _START_SECONDS) if initial is None else initial
            self.mirror = TokenBucket(limit, period=period, now=now, initial=start)
        elif self.mirror.capacity != limit or self.mirror.rate != limit / period:
            self.mirror.resize(limit, period=period, now=now)
        self.limit = limit
        if self.pace is not None:
            self.pace.apply(limit / period, now)

    def refresh_rate(self, now: float) -> None:
        """Re-derive the refill rates after the learnt window changed."""
        if self.limit is not None:
            self.set_limit(self.limit, now)

    def go_smooth(self, now: float, refused_at: float | None = None, request: float = 0.0) -> None:
        """From now on, pace this bucket smoothly (`pace.py`): a short-interval limit refused what went out
        around `refused_at`, so the pace starts at half the rate we were sending at then (`request`: the size of
        the refused request, which the next one waits a whole interval for)."""
        self.smooth = True
        if self.pace is None:
            self.pace = Pace()
        rate = self.rate()
        if rate is not None:
            sent = self.recent_rate(refused_at) if refused_at is not None else 0.0
            self.pace.start(sent, rate, now, fastest=self.fastest(), request=request)

    def recent_rate(self, at: float) -> float:
        """What we took per second in the `_RECENT` seconds up to `at`."""
        start = bisect.bisect_left(self._takes, (at - _RECENT, -math.inf))
        end = bisect.bisect_right(self._takes, (at, math.inf))
        if start >= end:
            return 0.0
        after = self._takes[end][1] if end < len(self._takes) else self._taken
        return (after - self._takes[start][1]) / _RECENT

    def sync_down(self, view: BucketView, limit: float, now: float, *, since: float | None) -> None:
        """A 429 from a bucket the server says is empty: hold what is surely left (less what we sent since the
        refused request, not counted in it yet), a debt included. `reset` says when the bucket is full again,
        so a bucket driven below zero (produced output tokens) shows as the debt it is.

        Surely left, not `remaining`: a token count rounded to thousands says "1000" for anything from 500 to
        1,499, and a mirror set to 1,000 lets a request of 1,024 go out a few milliseconds later, into the same
        refusal, again and again while the refill is slower than our reading of it (seven 429s in 40 ms, seen).
        From the low end, the next request goes out when even the emptiest bucket the headers allow holds it."""
        if self.mirror is None:
            return
        scale = limit / view.limit if view.limit > 0 else 1.0
        left = max(0.0, view.remaining - view.remaining_error + 1.0)
        rate = self.rate()
        if rate:
            left = min(left, view.limit - view.reset_in * rate / scale)
        if since is not None:
            left -= self.taken_since(since) / scale
        if left * scale < self.mirror.level(now):
            self.mirror.set_level(left * scale, now)
            self._rate_since = now  # the server's count holds the refill up to here
            if since is not None:
                self.counted_before = max(self.counted_before, since)

    def slow_down(self, now: float, request: float = 0.0) -> bool:
        """Paced smoothly and still refused over a short interval: step back below the pace that was refused.
        False when there is nothing to step back from (the learnt rate itself)."""
        rate = self.rate()
        return self.pace is not None and rate is not None and self.pace.refused(rate, now, request)

    # -- admission -----------------------------------------------------------------------------------------

    def wait_time(self, amount: float, pace_amount: float, now: float) -> float:
        """Seconds until this gate admits a request charging `amount` (and `pace_amount` of pacing)."""
        assert self.mirror is not None
        wait = self.mirror.wait_time(amount, now)
        if self.pace is not None:
            wait = max(wait, self.pace.wait_time(pace_amount, now, behind=wait))
        return wait

    def take(self, amount: float, pace_amount: float, now: float) -> None:
        assert self.mirror is not None
        self.mirror.take(amount, now)
        self._takes.append((now, self._taken, self.consumed))
        self._taken += amount
        self.consumed += amount
        if self.pace is not None:
            self.pace.take(pace_amount, now)

    def adjust(self, delta: float, now: float) -> None:
        """Charge (`delta` > 0) or refund (< 0) the difference between a reservation and the real count."""
        if self.mirror is None or delta == 0:
            return
        if delta > 0:
            self.mirror.take(delta, now)
        else:
            self.mirror.refund(-delta, now)
        self.consumed += delta
        self._taken += delta

    def correct(self, delta: float, admitted_at: float, now: float) -> None:
        """Settle a request admitted at `admitted_at`: the difference between its charge and the real count, unless
        the mirror has since been set to the server's count, which already holds the real one."""
        if admitted_at < self.counted_before:
            self.consumed += delta  # the flow evidence still learns what was really used
        else:
            self.adjust(delta, now)

    # -- what the server says ------------------------------------------------------------------------------

    def taken_since(self, since: float) -> float:
        """What we took from this bucket at or after `since` (all we remember, if it is older). Settles of requests
        the server had already counted when the mirror was set to its count are not in it: they changed nothing."""
        i = bisect.bisect_left(self._takes, (since, -math.inf))
        return 0.0 if i >= len(self._takes) else self._taken - self._takes[i][1]

    def taken_by(self, at: float) -> float:
        """What we had taken from this bucket by `at`, its takes at `at` included."""
        i = bisect.bisect_right(self._takes, (at, math.inf))
        return self._taken if i >= len(self._takes) else self._takes[i][1]

    def window_range(self) -> tuple[float, float]:
        """The shortest and the longest window the evidence allows (0 and inf while nothing bounds them)."""
        if self.override is not None:
            return self.override, self.override
        learnt = self.window.seconds()
        return self.window.bounds[0], math.inf if learnt is None else learnt

    def consumed_before(self, since: float) -> float | None:
        """Our net consumption before the first admission at or after `since` (None: older than we remember)."""
        i = bisect.bisect_left(self._takes, (since, -math.inf))
        if i >= len(self._takes):
            return self.consumed
        if i == 0 and len(self._takes) == self._takes.maxlen:
            return None
        return self._takes[i][2]

    def observe_reset(self, view: BucketView, now: float, since: float | None = None) -> bool:
        """Only the reset evidence of `view` (a refusal's headers; `since`: the request's admission, the earliest
        the server may have counted them): True when the learnt window moved."""
        before = self.window.seconds()
        self.window.observe_reset(
            view.limit,
            view.remaining,
            view.reset_in,
            remaining_error=view.remaining_error,
            reset_error=view.reset_error,
            stale=now - since if since is not None and view.reset_absolute else 0.0,
        )
        return self.window.seconds() != before

    def observe(
        self,
        view: BucketView,
        limit: float,
        now: float,
        *,
        flow: bool,
        since: float | None = None,
        credit: bool = False,
        counted_at_end: bool = False,
    ) -> bool:
        """Learn from one response; sync the mirror to `remaining`. True when the learnt window moved.

        `credit`: our charges to this bucket are exact (requests; output tokens reserved at admission), so a window
        learnt shorter can be trusted with the refill the mirror missed; estimated charges (input tokens) can make
        the flow evidence read a window shorter than the server's.

        `since`: when the request that brought this response was admitted. What we took after that may not be
        in its `remaining` yet, so the mirror is raised only to what is left after those; without `since`
        (the first response excepted) it is never raised.

        `counted_at_end`: the server was seen to count its headers as each answer ends (`counting.py`), so a reset
        timestamp counts from our reading, not from the admission.
        """
        before = self.window.seconds()
        old_rate = self.rate()
        self.observe_reset(view, now, None if counted_at_end else since)
        # The server counted `remaining` somewhere between the admission and now (`window.py`); without `since`,
        # at our reading.
        counted = None if since is None else self.consumed_before(since)
        if flow and (since is None or counted is not None):
            self.window.observe_flow(
                view.limit,
                view.remaining,
                self.consumed,
                now,
                remaining_error=view.remaining_error,
                since=since,
                consumed_since=counted,
            )
        moved = self.window.seconds() != before
        # Rounded token counts: what is surely left, and what may be.
        low = max(0.0, view.remaining - view.remaining_error + 1.0)
        high = view.remaining + view.remaining_error
        scale = limit / view.limit if view.limit > 0 else 1.0  # a user's lower ceiling scales what is left
        new_mirror = self.mirror is None
        self.set_limit(limit, now, initial=low * scale if new_mirror else None)
        if not self._synced:
            self._synced = True
            self._rate_since = now
            assert self.mirror is not None
            self.mirror.set_level(low * scale, now)
            self.counted_before = now  # the probe's own charge is in that count
            return moved
        if moved and not new_mirror:
            self.refresh_rate(now)
            if credit:
                self._credit_refill(old_rate, now)
            else:
                self._rate_since = now
        assert self.mirror is not None
        level = self.mirror.level(now)
        if self.pace is not None:
            # A unit of slack besides the rounding: answers come back out of the order they went out.
            self.pace.probe(
                limit / self.seconds(),
                now,
                remaining=view.remaining * scale,
                slack=(view.remaining_error + 1.0) * scale,
                fastest=self.fastest(),
            )
        # Never hold more than the server says is left; and start from (catch up with) what it says is there.
        # An unstreamed answer's headers may date from its admission (the server counts there): what the server
        # may hold now includes the refill since, or a stale `remaining` would hold the mirror back every time.
        ceiling, rate = high * scale, self.rate()
        if since is not None and rate is not None:
            ceiling += rate * max(0.0, now - since)
        if level > ceiling:
            self.mirror.set_level(view.remaining * scale, now)
            self._rate_since = now  # the server's count holds the refill up to here
            if since is not None:
                self.counted_before = max(self.counted_before, since)
        elif since is not None:
            floor = (low - self.taken_since(since)) * scale
            if level < floor:
                self.mirror.set_level(floor, now)
                self._rate_since = now  # the server's count holds the refill up to here
                self.counted_before = max(self.counted_before, since)
        return moved

    def _credit_refill(self, old_rate: float | None, now: float) -> None:
        """The learnt window just shortened: the server refilled at the faster rate all along, so the mirror is
        given the refill it missed since it last refilled at the rate in force (a longer window credits nothing:
        the server's answers pull a mirror that is ahead back down)."""
        rate = self.rate()
        if self.mirror is not None and old_rate is not None and rate is not None and rate > old_rate:
            self.mirror.refund((rate - old_rate) * max(0.0, now - self._rate_since), now)
        self._rate_since = now

    def fits(self, amount: float) -> bool:
        """Whether the server's bucket can ever hold `amount` at once."""
        return self.limit is None or amount <= self.limit

    def per_minute(self) -> float | None:
        rate = self.rate()
        return None if rate is None else rate * 60.0

    def __repr__(self) -> str:
        window = self.seconds()
        return f"Gate({self.name}, limit={self.limit}, window={window:g}s, mirror={self.mirror}, pace={self.pace})"
