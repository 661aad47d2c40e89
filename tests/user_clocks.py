"""A Clock a user might write themselves (not `SystemClock`, not `FakeClock`), for the tests of the one time seam."""

from __future__ import annotations

import anyio

from sluicegate.testing import FakeClock


class FourTimesFaster:
    """A user's clock that runs four times faster than the event loop (a power of two keeps the sums exact)."""

    def __init__(self, loop: FakeClock) -> None:
        self._loop = loop

    def now(self) -> float:
        return 4.0 * self._loop.now()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds) / 4.0)
