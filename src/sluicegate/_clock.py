"""Time as an input: the Clock protocol and the system clock.

Library code reads the time and sleeps through a Clock (the gate's backoff, a job's commit tick, drain and poll
waits, the progress display), so tests can inject `sluicegate.testing.FakeClock` and make a 100-second scenario
run in milliseconds with exact assertions on time. A ruff banned-api rule keeps bare sleeps out of `src/` (the
emulator, a separate server, keeps its own). Waits that end early on an event (the limiter waiting for capacity)
use the event loop's timeouts: `SystemClock` reads the same monotonic time as the loop, and `FakeClock` drives the
loop's time itself, so both kinds of wait follow one clock.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds and a sleep that honours cancellation."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
