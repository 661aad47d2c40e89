"""The gateway's scheduler: requests wait here for their turn, enter the shared limiter one at a time, and are
answered at once when the wait would pass their deadline.

A few tickets at a time (`max_entering`) wait inside the limiter, in the order they were picked here; everybody
else waits here, where the order can be chosen. More than one may enter so that a gateway whose limits are far
away does not admit requests one event-loop turn at a time. When an interactive ticket arrives, the bulk tickets
inside the limiter go back to the heads of their lines (nothing of them has gone upstream yet), so interactive
work waits at most about one admission interval behind any bulk backlog.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from .._clock import Clock, SystemClock, wait_event
from ._queue import AdmissionRate, FairQueue, Priority, Ticket

__all__ = ["Refused", "Scheduler", "SchedulerStatistics"]


class Refused(Exception):
    """The gateway answers 429 itself: the wait would pass the deadline, or the queue is full."""

    def __init__(self, reason: Literal["deadline", "queue_full"], retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """The waiting line right now."""

    queued_interactive: int
    queued_bulk: int
    entering: int  # tickets inside the limiter, not yet admitted
    admitted: int
    refused: int
    preempted: int
    interval: float | None  # seconds per admission in busy periods (None until measured or known)
    queued_by_client: dict[str, int]


class Scheduler:
    """Tickets in a FairQueue, let into the limiter one at a time; waits estimated from the admission rate.

    `rate_hint` gives the requests per second the known limits allow (the limiter's ceiling), used for estimates
    until admissions have been measured; `warm` says whether the limiter is past its first-answer probe.
    """

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        bulk_every: int = 10,
        rate_hint: Callable[[], float | None] = lambda: None,
        warm: Callable[[], bool] = lambda: True,
        clock: Clock | None = None,
        max_entering: int = 16,
    ) -> None:
        self._queue = FairQueue(bulk_every=bulk_every)
        self._rate = AdmissionRate()
        self._rate_hint = rate_hint
        self._warm = warm
        self._clock = clock or SystemClock()
        self._max_queue = max_queue
        self._max_entering = max_entering
        self._entering: list[Ticket] = []  # in the order they were let in (the limiter's first-come order)
        self._protected: set[Ticket] = set()  # bulk tickets whose turn was owed to bulk are not sent back
        self._turns: dict[Ticket, anyio.Event] = {}
        self._cancels: dict[Ticket, Callable[[], None]] = {}
        self._refused = 0
        self._preempted = 0

    # -- estimates -----------------------------------------------------------------------------------------

    def _fallback_interval(self) -> float | None:
        rate = self._rate_hint()
        return 1.0 / rate if rate else None

    def interval(self) -> float | None:
        """Seconds per admission: measured in busy periods, else from the known limits."""
        return self._rate.interval() or self._fallback_interval()

    def estimate(self, client: str, share: float, priority: Priority) -> float | None:
        """Seconds a new ticket with these properties would wait to be admitted (None: no rate known yet)."""
        turns = self._queue.ahead_of(client, share, priority) + len(self._entering) + 1
        if turns == 1:
            return 0.0
        return self._rate.wait(self._clock.now(), turns, fallback=self._fallback_interval())

    # -- a ticket's life -----------------------------------------------------------------------------------

    def submit(self, client: str, share: float, priority: Priority, max_wait: float) -> Ticket:
        """Queue a request, or raise Refused when it cannot be admitted within `max_wait` seconds."""
        estimate = self.estimate(client, share, priority)
        if len(self._queue) >= self._max_queue:
            self._refused += 1
            raise Refused("queue_full", estimate)
        if estimate is not None and estimate > max_wait:
            self._refused += 1
            raise Refused("deadline", estimate)
        now = self._clock.now()
        ticket = Ticket(client=client, share=share, priority=priority, enqueued_at=now, deadline=now + max_wait)
        self._queue.push(ticket)
        if priority == "interactive":
            # Back to their lines, last in first, so each line keeps its order.
            for other in reversed([t for t in self._entering if t.priority == "bulk" and t not in self._protected]):
                self._preempt(other)
        self._pump()
        return ticket

    async def wait_turn(self, ticket: Ticket) -> None:
        """Return when `ticket` may enter the limiter; raise Refused if its deadline comes first."""
        left = ticket.deadline - self._clock.now()
        while ticket.state == "queued" and left > 0:
            event = self._turns[ticket] = anyio.Event()
            if not await wait_event(self._clock, event, left):
                break  # the deadline came first
            left = ticket.deadline - self._clock.now()
        self._turns.pop(ticket, None)
        if ticket.state == "queued":
            raise self._expired(ticket)

    def entering(self, ticket: Ticket, cancel: Callable[[], None]) -> None:
        """The ticket's attempt to pass the limiter can be called off with `cancel` (used to send it back)."""
        self._cancels[ticket] = cancel

    def expired(self, ticket: Ticket) -> Refused:
        """The deadline passed while the ticket was still inside the limiter: it leaves, and gets a 429."""
        return self._expired(ticket)

    def _expired(self, ticket: Ticket) -> Refused:
        turns = self._queue.ahead_of(ticket.client, ticket.share, ticket.priority)
        self.leave(ticket)
        self._refused += 1
        wait = self._rate.wait(self._clock.now(), max(1, turns), fallback=self._fallback_interval())
        return Refused("deadline", wait)

    def admitted(self, ticket: Ticket) -> None:
        """The ticket passed the limiter: its request goes upstream now, and the next ticket may enter."""
        if ticket.state != "entering":
            return
        ticket.state = "admitted"
        ticket.admitted_at = self._clock.now()
        self._cancels.pop(ticket, None)
        self._protected.discard(ticket)
        self._entering.remove(ticket)
        # Gaps while the limiter still probes (one request until the first answer) say how slow the first answer
        # was, not how fast admissions go: they would turn a burst of new requests into a burst of refusals.
        backlog = len(self._queue) + len(self._entering) > 0
        self._rate.record(ticket.admitted_at, backlog=backlog and self._warm())
        self._pump()

    def leave(self, ticket: Ticket) -> None:
        """The ticket is done with the line (answered, refused, or its client went away)."""
        if ticket.state == "queued":
            self._queue.remove(ticket)
        elif ticket.state == "entering" and ticket in self._entering:
            self._entering.remove(ticket)
        ticket.state = "gone" if ticket.state != "admitted" else ticket.state
        self._turns.pop(ticket, None)
        self._cancels.pop(ticket, None)
        self._protected.discard(ticket)
        self._pump()
        if not self._entering and not self._queue:
            self._rate.idle()

    # -- internals -----------------------------------------------------------------------------------------

    def _preempt(self, ticket: Ticket) -> None:
        self._entering.remove(ticket)
        ticket.preemptions += 1
        self._preempted += 1
        self._queue.push(ticket, front=True)
        cancel = self._cancels.pop(ticket, None)
        if cancel is not None:
            cancel()

    def _pump(self) -> None:
        while len(self._entering) < self._max_entering:
            interactive_waiting = self._queue.count("interactive") > 0
            owed = self._queue.bulk_owed
            next_is_bulk = owed or not interactive_waiting
            # A bulk ticket does not join an interactive one inside the limiter (it could take the admission the
            # interactive one is waiting for), unless bulk is owed its turn.
            if next_is_bulk and not owed and any(t.priority == "interactive" for t in self._entering):
                return
            ticket = self._queue.pop()
            if ticket is None:
                return
            ticket.state = "entering"
            self._entering.append(ticket)
            if ticket.priority == "bulk" and interactive_waiting:
                self._protected.add(ticket)
            event = self._turns.get(ticket)
            if event is not None:
                event.set()

    def statistics(self) -> SchedulerStatistics:
        interval = self.interval()
        return SchedulerStatistics(
            queued_interactive=self._queue.count("interactive"),
            queued_bulk=self._queue.count("bulk"),
            entering=len(self._entering),
            admitted=self._rate.admitted,
            refused=self._refused,
            preempted=self._preempted,
            interval=interval if interval is None or math.isfinite(interval) else None,
            queued_by_client=self._queue.by_client(),
        )
