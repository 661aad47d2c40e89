"""Time as an input: the Clock protocol, the system clock, and the waits every part of sluicegate goes through.

One honest seam: every wait that decides pacing is on the Clock given to the engine (or job, or gateway). Plain
sleeps call `clock.sleep` (the gate's backoff, a job's commit tick, drain and poll waits, the progress display).
Waits that may end early on an event (the limiter waiting for capacity, the breaker's probe, a cool-down, the
gateway's queue deadline) go through `wait_event` and `Deadline` here, which measure the timeout on the same
Clock. A user's own Clock (virtual, scaled, driven by a simulation) therefore paces everything; it needs only
`now()` and `sleep()`.

The event loop keeps its own timers, and for the clocks whose time *is* the loop's (`SystemClock` reads the
monotonic time asyncio reads; `sluicegate.testing.FakeClock` drives the loop's time), these waits use the loop's
timeouts directly: no extra task per wait, and exact virtual deadlines under the fake clock. Any other Clock
gets the general path: the event raced against `clock.sleep`. Only the exact classes marked `loop_timed` take
the fast path, never a subclass, which may redefine `now()`.

What stays on the loop's time: timeouts that bound real I/O (a request's total timeout, connect and read
timeouts, the grace for closing a Redis link), since the network runs on real time whatever the pacing clock
says. Wall-clock instants (a response's `date`, a deadline's calendar time) come in as parameters
(`time.time` by default), never from the Clock, which is monotonic.

A ruff banned-api rule keeps bare sleeps and bare timeouts out of `src/`: this module is the seam, the emulator
(a separate server) keeps its own time, and each I/O timeout says why with its `noqa`.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

import anyio

__all__ = ["Clock", "Deadline", "SystemClock", "loop_timed", "wait_event"]

_C = TypeVar("_C", bound=type)
_LOOP_TIMED: set[type] = set()


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds and a sleep that honours cancellation.

    Give one to `Engine`, `run_job` or the gateway and every pacing wait is measured on it: sleeps, backoff, and
    the waits for capacity that end early when capacity frees. `sleep` must return once `now()` has advanced by
    `seconds` (its own time, whatever the event loop's), and raise when cancelled.
    """

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


def loop_timed(cls: _C) -> _C:
    """Mark a Clock class whose `now()` runs at the event loop's time and whose `sleep` is a loop timer, so
    waits on it may use the loop's timeouts (subclasses are not marked: they may redefine `now`)."""
    _LOOP_TIMED.add(cls)
    return cls


@loop_timed
class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


async def wait_event(clock: Clock, event: anyio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` have passed on `clock`, whichever comes first; True if the event
    is set. Callers that loop decide "timed out" by this answer, not by re-reading the clock, so a float hair
    left before a deadline cannot make them spin."""
    if type(clock) in _LOOP_TIMED:  # the hot path (the defaults): exactly the loop's own timeout
        with anyio.move_on_after(seconds):
            await event.wait()
    elif event.is_set():
        await anyio.lowlevel.checkpoint()
    elif seconds == math.inf:
        await event.wait()
    else:
        with Deadline(clock, seconds):
            await event.wait()
    return event.is_set()


class Deadline:
    """A cancel scope that fires once `seconds` have passed on `clock`, unless lifted first.

    `with Deadline(clock, 5.0) as d:` cancels the block after 5 clock seconds; `d.lift()` turns the deadline off
    (the block then runs to its end) and `d.cancel()` cancels at once. `d.scope` is the anyio scope underneath.
    """

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._seconds = max(0.0, seconds)
        self.scope = anyio.CancelScope()
        self._timer: asyncio.Task[None] | None = None

    def __enter__(self) -> Deadline:
        if self._seconds == math.inf:
            pass
        elif type(self._clock) in _LOOP_TIMED:
            self.scope.deadline = anyio.current_time() + self._seconds
        else:
            # A plain task rather than a task group: a task group around the caller's block would wrap the
            # block's own exceptions in an ExceptionGroup, and costs about twice the CPU per wait.
            self._timer = asyncio.get_running_loop().create_task(self._ring())
        self.scope.__enter__()
        return self

    async def _ring(self) -> None:
        await self._clock.sleep(self._seconds)
        self.scope.cancel()

    def lift(self) -> None:
        self.scope.deadline = math.inf
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        self.scope.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return bool(self.scope.__exit__(exc_type, exc, tb))
