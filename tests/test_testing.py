"""The fake clock: time jumps to the next pending timer's exact deadline, skipping cancelled ones."""

from __future__ import annotations

import anyio

from sluicegate.testing import FakeClock


def test_time_lands_exactly_on_each_deadline() -> None:
    """Ten sleeps of 0.1 s leave `now()` at exactly the deadlines the loop computed, not a float neighbour."""
    clock = FakeClock(start=100.0)
    seen: list[float] = []

    async def main() -> None:
        for _ in range(10):
            await anyio.sleep(0.1)
            seen.append(clock.now())

    clock.run(main)
    expected: list[float] = []
    t = 100.0
    for _ in range(10):
        t = t + 0.1
        expected.append(t)
    assert seen == expected


def test_a_cancelled_timer_does_not_hold_time_back() -> None:
    """A timeout that was cancelled before its deadline is skipped: the next real timer decides the jump."""
    clock = FakeClock()
    woke: list[float] = []

    async def main() -> None:
        with anyio.move_on_after(1.0):
            await anyio.lowlevel.checkpoint()  # done at once: the 1 s timer is cancelled, never due
        await anyio.sleep(3.0)
        woke.append(clock.now())

    clock.run(main)
    assert woke == [3.0]
