"""Test helpers: a fake clock that makes time an input of the test.

`FakeClock.run(main)` runs `main` on an asyncio event loop whose time is virtual. Whenever every task is
waiting and no I/O is ready, time jumps straight to the next timer (trio's autojump clock, done at the
selector). So `anyio.sleep`, cancel scopes, `fail_after` and the engine's own waits all run on virtual time:
a 100-second scenario takes milliseconds and asserts `clock.now() == 100.0` exactly.

The loop learns its timers through its public `call_at` (which `call_later`, anyio's cancel scopes and
`asyncio.timeout` all go through) and keeps its own heap of them, so the jump lands on a timer's exact
deadline without reading the loop's private state.

Only in-process work belongs on a fake clock (a mock transport, the limiter). Real sockets to another
thread or process would see time jump while they work; test those against the emulator on the real clock.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio

from ._clock import loop_timed

__all__ = ["DeadlockError", "FakeClock"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# When nothing is scheduled and no I/O is ready, a helper thread may still wake the loop (getaddrinfo,
# to_thread); give it this long in real seconds before calling the test a deadlock.
_REAL_IDLE_GRACE = 5.0


class DeadlockError(RuntimeError):
    """Every task waits for something that no timer and no I/O will ever deliver."""


class _VirtualTime:
    """The one reading a FakeClock and its loops share."""

    __slots__ = ("now",)

    def __init__(self, start: float) -> None:
        self.now = start


class _Deadlines:
    """The loop's pending timers, as seen through `call_at`: a heap of handles (they order by deadline)."""

    def __init__(self) -> None:
        self._heap: list[asyncio.TimerHandle] = []
        self._compact_above = 64

    def add(self, handle: asyncio.TimerHandle) -> None:
        heapq.heappush(self._heap, handle)
        if len(self._heap) > self._compact_above:
            # Cancelled timeouts (a wait that ended on its event) sink into the heap; drop them now and then,
            # as asyncio does with its own heap, so a long test does not grow it without bound.
            self._heap = [handle for handle in self._heap if not handle.cancelled()]
            heapq.heapify(self._heap)
            self._compact_above = max(64, 2 * len(self._heap))

    def next_after(self, now: float) -> float | None:
        """The earliest live deadline later than `now`; those at or before it have run or were cancelled."""
        heap = self._heap
        while heap and (heap[0].cancelled() or heap[0].when() <= now):
            heapq.heappop(heap)
        return heap[0].when() if heap else None


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that advances the clock instead of blocking when a timer is the next thing to happen."""

    def __init__(self, time: _VirtualTime, deadlines: _Deadlines) -> None:
        super().__init__()
        self._time = time
        self._deadlines = deadlines

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            events = super().select(_REAL_IDLE_GRACE)
            if not events:
                raise DeadlockError("every task is waiting and no timer is scheduled")
            return events
        if timeout > 0:
            # Land exactly on the next timer's deadline so `now()` reads 1.5, not 1.4999999999999998. The loop
            # passes a positive timeout only when no timer is due, so the next live one is the one it waits for.
            target = self._deadlines.next_after(self._time.now)
            self._time.now = max(self._time.now, self._time.now + timeout if target is None else target)
        return []


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, time: _VirtualTime) -> None:
        self._deadlines = _Deadlines()
        super().__init__(_JumpingSelector(time, self._deadlines))
        self._virtual_time = time

    def time(self) -> float:
        return self._virtual_time.now

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[Ts]], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        self._deadlines.add(handle)
        return handle


@loop_timed
class FakeClock:
    """A Clock on virtual time. Use `clock.run(main)` to run a test on it.

    `now()` starts at `start` and only moves when every task is blocked (or through `advance`).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._time = _VirtualTime(float(start))

    def now(self) -> float:
        return self._time.now

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (for pure code that reads `now()` outside an event loop)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._time.now += seconds

    def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `func(*args)` to completion on an event loop driven by this clock."""
        return anyio.run(
            func, *args, backend="asyncio", backend_options={"loop_factory": lambda: _VirtualTimeLoop(self._time)}
        )
