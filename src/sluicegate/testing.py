"""Test helpers: a fake clock that makes time an input of the test.

`FakeClock.run(main)` runs `main` on an asyncio event loop whose time is virtual. Whenever every task is
waiting and no I/O is ready, time jumps straight to the next timer (trio's autojump clock, done at the
selector). So `anyio.sleep`, cancel scopes, `fail_after` and the engine's own waits all run on virtual time:
a 100-second scenario takes milliseconds and asserts `clock.now() == 100.0` exactly.

Only in-process work belongs on a fake clock (a mock transport, the limiter). Real sockets to another
thread or process would see time jump while they work; test those against the emulator on the real clock.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["DeadlockError", "FakeClock"]

T = TypeVar("T")

# When nothing is scheduled and no I/O is ready, a helper thread may still wake the loop (getaddrinfo,
# to_thread); give it this long in real seconds before calling the test a deadlock.
_REAL_IDLE_GRACE = 5.0


class DeadlockError(RuntimeError):
    """Every task waits for something that no timer and no I/O will ever deliver."""


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that advances the clock instead of blocking when a timer is the next thing to happen."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None

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
            # Land exactly on the next timer's deadline so `now()` reads 1.5, not 1.4999999999999998.
            scheduled = getattr(self.loop, "_scheduled", None)
            target = scheduled[0].when() if scheduled else self._clock._now + timeout
            self._clock._now = max(self._clock._now, target)
        return []


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock) -> None:
        selector = _JumpingSelector(clock)
        super().__init__(selector)
        selector.loop = self
        self._fake_clock = clock

    def time(self) -> float:
        return self._fake_clock._now


class FakeClock:
    """A Clock on virtual time. Use `clock.run(main)` to run a test on it.

    `now()` starts at `start` and only moves when every task is blocked (or through `advance`).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (for pure code that reads `now()` outside an event loop)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds

    def run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `func(*args)` to completion on an event loop driven by this clock."""
        return anyio.run(
            func, *args, backend="asyncio", backend_options={"loop_factory": lambda: _VirtualTimeLoop(self)}
        )
