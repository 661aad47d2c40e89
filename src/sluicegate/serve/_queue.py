"""The gateway's waiting line: interactive before bulk, clients by their share, and the admission rate it moves at.

Pure data structures with `now` passed in, so ordering and wait estimates are tested without waiting.

Order (the documented rule):
- Interactive tickets go before bulk ones, except that while both wait, every `bulk_every`-th turn goes to bulk,
  so a steady stream of interactive work slows a backlog down but never starves it.
- Inside one class, clients share turns in proportion to their `share` (start-time fair queueing: each ticket
  gets a virtual start tag, the smallest tag goes first, a client that was idle starts at the current virtual
  time and banks no credit). One client's tickets keep their arrival order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = ["AdmissionRate", "FairQueue", "Priority", "Ticket"]

Priority = Literal["interactive", "bulk"]
_CLASSES: tuple[Priority, Priority] = ("interactive", "bulk")


@dataclass(eq=False, slots=True)
class Ticket:
    """One request waiting for its turn to enter the limiter."""

    client: str
    share: float
    priority: Priority
    enqueued_at: float
    deadline: float = math.inf  # clock time after which waiting on is pointless for the caller
    start_tag: Fraction = Fraction(0)  # exact: float tags drift apart by rounding and break ties unfairly
    seq: int = 0  # arrival order, the tie-break between equal tags
    state: Literal["queued", "entering", "admitted", "gone"] = "queued"
    admitted_at: float | None = None
    preemptions: int = 0


class _Class:
    """The tickets of one priority class, a FIFO per client, served by smallest virtual start tag."""

    __slots__ = ("clients", "finish", "seq", "size", "vnow")

    def __init__(self) -> None:
        self.clients: dict[str, deque[Ticket]] = {}
        self.finish: dict[str, Fraction] = {}  # the virtual time each client's next ticket may start at
        self.vnow = Fraction(0)  # start tag of the ticket served last
        self.size = 0
        self.seq = 0

    def push(self, ticket: Ticket, *, front: bool) -> None:
        line = self.clients.get(ticket.client)
        if line is None:
            line = self.clients[ticket.client] = deque()
        if front:  # a preempted ticket goes back where it was, with the tag it had
            line.appendleft(ticket)
        else:
            start = self.finish[ticket.client] if line else max(self.finish.get(ticket.client, self.vnow), self.vnow)
            self.seq += 1
            ticket.start_tag = start
            ticket.seq = self.seq
            self.finish[ticket.client] = start + 1 / _exact(ticket.share)
            line.append(ticket)
        self.size += 1

    def pop(self) -> Ticket | None:
        best: deque[Ticket] | None = None
        for line in self.clients.values():
            if line and (best is None or (line[0].start_tag, line[0].seq) < (best[0].start_tag, best[0].seq)):
                best = line
        if best is None:
            return None
        ticket = best.popleft()
        self.size -= 1
        self.vnow = max(self.vnow, ticket.start_tag)
        if not best:
            del self.clients[ticket.client]
        return ticket

    def remove(self, ticket: Ticket) -> bool:
        line = self.clients.get(ticket.client)
        if line is None or ticket not in line:
            return False
        line.remove(ticket)
        self.size -= 1
        if not line:
            del self.clients[ticket.client]
        return True

    def ahead_of(self, client: str, share: float) -> int:
        """How many tickets already here would go before a new ticket of `client` (by the start-tag rule)."""
        own = self.clients.get(client)
        start = self.finish[client] if own else max(self.finish.get(client, self.vnow), self.vnow)
        count = len(own) if own else 0
        for name, line in self.clients.items():
            if name == client or not line:
                continue
            head = line[0].start_tag
            # Tags of that client run head, head + 1/share, ...; those not after ours go first (ties go to the
            # earlier arrival, which is theirs).
            before = math.floor((start - head) * _exact(line[0].share)) + 1 if start >= head else 0
            count += min(len(line), before)
        return count


def _exact(share: float) -> Fraction:
    return Fraction(share).limit_denominator(10_000)


class FairQueue:
    """Waiting tickets of both classes. `pop` gives the next ticket to enter the limiter."""

    def __init__(self, *, bulk_every: int = 10) -> None:
        if bulk_every < 2:
            raise ValueError("bulk_every must be at least 2")
        self._classes: dict[Priority, _Class] = {name: _Class() for name in _CLASSES}
        self._bulk_every = bulk_every
        self._interactive_streak = 0  # interactive turns in a row while bulk was waiting

    def __len__(self) -> int:
        return self._classes["interactive"].size + self._classes["bulk"].size

    def count(self, priority: Priority) -> int:
        return self._classes[priority].size

    def by_client(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cls in self._classes.values():
            for name, line in cls.clients.items():
                out[name] = out.get(name, 0) + len(line)
        return out

    def push(self, ticket: Ticket, *, front: bool = False) -> None:
        ticket.state = "queued"
        self._classes[ticket.priority].push(ticket, front=front)

    def remove(self, ticket: Ticket) -> bool:
        return self._classes[ticket.priority].remove(ticket)

    @property
    def bulk_owed(self) -> bool:
        """True when the next turn belongs to bulk (interactive has had its run while bulk waited)."""
        return self._classes["bulk"].size > 0 and self._interactive_streak >= self._bulk_every - 1

    def pop(self) -> Ticket | None:
        interactive, bulk = self._classes["interactive"], self._classes["bulk"]
        if interactive.size and not self.bulk_owed:
            if bulk.size:
                self._interactive_streak += 1
            return interactive.pop()
        self._interactive_streak = 0
        return bulk.pop() if bulk.size else interactive.pop()

    def ahead_of(self, client: str, share: float, priority: Priority) -> int:
        """How many waiting tickets would enter before a new one with these properties (an estimate of the rule)."""
        own = self._classes[priority].ahead_of(client, share)
        if priority == "interactive":
            bulk = self._classes["bulk"].size
            return own + min(bulk, (own + 1) // (self._bulk_every - 1))
        interactive = self._classes["interactive"].size
        return own + min(interactive, (own + 1) * (self._bulk_every - 1))


class AdmissionRate:
    """Seconds per admission while there is a backlog, from the gaps between recent admissions.

    Only gaps inside a busy period count: the time between an admission and the next one when somebody was
    already waiting. An idle gateway's gaps say how rarely people call, not how fast the limits let them in.
    The window is short (16 gaps) because the rate changes: a start that spends the server's burst admits far
    faster than the refill rate that follows, and an estimate should follow that within a couple of seconds.
    """

    def __init__(self, *, window: int = 16) -> None:
        self._gaps: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self._last_busy = False
        self.admitted = 0

    def idle(self) -> None:
        """Nobody waits any more (the last waiter left without being admitted): the busy period is over."""
        self._last_busy = False

    def record(self, now: float, *, backlog: bool) -> None:
        """An admission at `now`; `backlog` says whether others were waiting behind it."""
        if self._last is not None and self._last_busy:
            self._gaps.append(now - self._last)
        self._last = now
        self._last_busy = backlog
        self.admitted += 1

    @property
    def last(self) -> float | None:
        return self._last

    def interval(self) -> float | None:
        """Mean seconds between admissions in busy periods; None until a few were seen."""
        if len(self._gaps) < 4:
            return None
        return sum(self._gaps) / len(self._gaps)

    def wait(self, now: float, turns: int, *, fallback: float | None) -> float | None:
        """Seconds until the `turns`-th admission from now (1 = the next one); None when no rate is known."""
        interval = self.interval() or fallback
        if interval is None:
            return None
        if turns <= 0:
            return 0.0
        if self._last is None:
            return (turns - 1) * interval
        # In a busy period admissions tick at `interval` from the last one; after an idle spell the next is now.
        return max((turns - 1) * interval, self._last + turns * interval - now)
