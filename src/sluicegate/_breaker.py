"""A circuit breaker for overload: a burst of 529s stops the run's traffic, probes, then ramps back up.

A scattered 529 is one item's business (its own backoff). A burst means the service is overloaded for everyone:
sending at full pace then only multiplies 529s, and each item's own exponential backoff both keeps hammering
(hundreds of items, each on its own timer) and stretches the end of the run long after the overload lifted.

States:
- closed: nothing is held back; the last `window` answers are watched.
- open (tripped when at least `min_failures` of the last `window` answers, and at least `trip_ratio` of them,
  were overloaded): nothing goes out except one probe every `probe_interval` seconds, doubled after each failed
  probe up to `max_probe_interval` (both 0.5 s by default: two requests a second reach an overloaded server,
  and the run learns within half a second that the overload is over).
- ramp (a probe succeeded): a slow start, as TCP's but steeper: `allowance` attempts may be in flight, half
  the concurrency the limiter wants at first (at least 2), two more per success (so it triples every round
  trip), closed again once it reaches that concurrency; from then on the limiter paces by what the server's
  headers say is left, which after an overload is its full buckets. It opens again when at least two, and at
  least `trip_ratio` both of the ramp's answers and of its allowance, were overloaded (a scattered 529 while
  ramping is not a new burst, even when it is the first answer back), and then probes at the interval it had
  reached: a server that flaps is probed no faster than one that stays down. Only closing brings the interval
  back to `probe_interval`.

Answers to attempts sent before the breaker's last change are stale (they were in flight when it tripped) and do
not move it. Pure state on an injected clock; the only waiting is `wait_turn` and `hold`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import anyio

from ._clock import Clock, Deadline, wait_event

__all__ = ["Breaker", "BreakerState", "Ticket"]

BreakerState = Literal["closed", "open", "ramp"]


@dataclass(slots=True)
class Ticket:
    """One attempt let through: the breaker epoch it went out in, and whether it counts as in flight here."""

    epoch: int
    tracked: bool
    done: bool = False


class Breaker:
    """Closed, open (probing) or ramping; see the module docstring."""

    def __init__(
        self,
        clock: Clock,
        *,
        window: int = 20,
        min_failures: int = 8,
        trip_ratio: float = 0.5,
        probe_interval: float = 0.5,
        max_probe_interval: float = 0.5,
    ) -> None:
        self._clock = clock
        self._recent: deque[bool] = deque(maxlen=window)
        self._min_failures = min_failures
        self._trip_ratio = trip_ratio
        self._base_interval = probe_interval
        self._max_interval = max_probe_interval
        self._interval = probe_interval
        self.state: BreakerState = "closed"
        self._epoch = 0
        self._probe_at = -math.inf
        self._allowance = 0
        self._in_flight = 0  # tracked attempts (sent while open or ramping) not answered yet
        self._changed = anyio.Event()
        self.trips = 0  # how often it opened
        self.held_back = 0.0  # seconds attempts waited here, summed over attempts

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    @property
    def allowance(self) -> int:
        """Attempts that may be in flight while ramping (0 otherwise)."""
        return self._allowance if self.state == "ramp" else 0

    async def wait_turn(self) -> Ticket:
        """Return at once while closed; otherwise wait for a probe slot (open) or an allowance slot (ramp)."""
        if self.state == "closed":
            return Ticket(self._epoch, tracked=False)
        started = self._clock.now()
        while True:
            changed = self._changed
            wait = self._wait_time()
            if wait <= 0:
                break
            await wait_event(self._clock, changed, wait)
        self.held_back += self._clock.now() - started
        if self.closed:  # it may have closed while this attempt waited
            return Ticket(self._epoch, tracked=False)
        if self.state == "open":
            self._probe_at = math.inf  # one probe at a time; its answer sets the next
        self._in_flight += 1
        return Ticket(self._epoch, tracked=True)

    def _wait_time(self) -> float:
        if self.state == "closed":
            return 0.0
        if self.state == "open":
            if self._in_flight > 0:
                return math.inf
            return self._probe_at - self._clock.now()
        return 0.0 if self._in_flight < self._allowance else math.inf

    def record(self, ticket: Ticket, *, overloaded: bool, target: int = 1) -> None:
        """An answer (or a failure) for `ticket`; `target` is the concurrency at which a ramp closes again."""
        if not self._finish(ticket):
            return
        if ticket.epoch != self._epoch:
            self._notify()  # its slot is free (waiters may be waiting for it), but it says nothing of the state
            return
        now = self._clock.now()
        if self.state == "closed":
            self._recent.append(overloaded)
            failures = sum(self._recent)
            if failures >= self._min_failures and failures >= self._trip_ratio * len(self._recent):
                self.trips += 1
                self._interval = self._base_interval
                self._open(now)
        elif self.state == "open":
            if overloaded:
                self._interval = min(self._max_interval, self._interval * 2)
                self._probe_at = now + self._interval
            else:
                self.state = "ramp"
                self._allowance = max(2, target // 2)
                self._recent.clear()
        else:  # ramp: a scattered 529 while ramping is not a new burst; most answers overloaded again is.
            self._recent.append(overloaded)
            failures = sum(self._recent)
            # A 529 comes back at once and a success only after the whole answer, so the ramp's first answers are
            # its scattered 529s: judged against the attempts let through (not the few answers back so far), two
            # of them no longer look like "most".
            enough = max(2.0, self._trip_ratio * self._allowance, self._trip_ratio * len(self._recent))
            if overloaded and failures >= enough:
                self._open(now)
            elif not overloaded:
                # Two more per success (it triples every round trip): an unstreamed answer takes a whole
                # generation to say the service is back, and the ramp already starts at half the target.
                self._allowance += 2
                if self._allowance >= target:
                    self.state = "closed"
                    self._interval = self._base_interval
                    self._recent.clear()
        self._notify()

    async def hold(self, seconds: float) -> None:
        """Sleep `seconds` unless the breaker changes state first: an item backing off from an overload then
        waits for the breaker (`wait_turn`) instead of its own timer, which could run on long after it closed."""
        if seconds <= 0:
            return
        start = (self._epoch, self.state)
        with Deadline(self._clock, seconds):
            while (self._epoch, self.state) == start:
                await self._changed.wait()

    def current(self, ticket: Ticket) -> bool:
        """Whether the breaker has not opened (or been reset) since `ticket` was let through."""
        return ticket.epoch == self._epoch

    def reset(self) -> None:
        """Close at once and let every waiter go (the caller has a better way to fail them fast)."""
        self.state = "closed"
        self._epoch += 1
        self._recent.clear()
        self._notify()

    def forget(self, ticket: Ticket) -> None:
        """The attempt never got an answer that says anything (cancelled, not sent): free its slot."""
        if self._finish(ticket) and self.state == "open" and ticket.epoch == self._epoch:
            self._probe_at = self._clock.now()  # the probe slot is free again
        self._notify()

    def _finish(self, ticket: Ticket) -> bool:
        if ticket.done:
            return False
        ticket.done = True
        if ticket.tracked:
            self._in_flight -= 1
        return True

    def _open(self, now: float) -> None:
        self.state = "open"
        self._epoch += 1
        self._recent.clear()
        self._probe_at = now + self._interval
        self._allowance = 0

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
