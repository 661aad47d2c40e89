"""Time as an input: the Clock protocol and the system clock.

Exactly one place waits for capacity (the limiter) and it waits through a Clock, so tests can inject a
fake clock and make a 100-second scenario run in milliseconds with exact assertions on time.
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
