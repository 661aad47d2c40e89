"""The Clock seam: a user's own Clock paces every wait, including the waits that end early on an event."""

from __future__ import annotations

import asyncio
import math

import anyio
import anyio.lowlevel
import pytest

from sluicegate import Clock, Usage
from sluicegate._breaker import Breaker
from sluicegate._clock import Deadline, wait_event
from sluicegate.limits.limiter import Limiter, Limits
from sluicegate.serve.scheduler import Refused, Scheduler
from sluicegate.testing import FakeClock
from user_clocks import FourTimesFaster


class ManualClock:
    """A user's clock not tied to the loop at all: it moves only when the test calls `advance`."""

    def __init__(self) -> None:
        self.t = 0.0
        self._moved = anyio.Event()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        end = self.t + max(0.0, seconds)
        while self.t < end:
            moved = self._moved
            await moved.wait()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._moved, moved = anyio.Event(), self._moved
        moved.set()


class HalfSpeedFake(FakeClock):
    """A subclass of a loop-timed clock that redefines time: it must not inherit the loop-timeout shortcut."""

    def now(self) -> float:
        return super().now() / 2.0

    async def sleep(self, seconds: float) -> None:
        await super().sleep(2.0 * seconds)


def test_user_clocks_satisfy_the_public_protocol() -> None:
    """The test's clocks are what a user writes against `sluicegate.Clock`: `now()` and `sleep()`, nothing more."""
    assert isinstance(FourTimesFaster(FakeClock()), Clock)
    assert isinstance(ManualClock(), Clock)


def test_the_limiter_paces_by_a_users_own_clock() -> None:
    """RPM 60 on a clock four times faster than the loop: one admission per second of that clock (a quarter of a
    loop second), not one per loop second as a wait on the loop's timeouts would give."""
    loop = FakeClock()
    user = FourTimesFaster(loop)
    times: list[float] = []

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=60), clock=user)
        limiter.saw_response()
        for _ in range(10):
            permit = await limiter.acquire(0, 0)
            times.append(user.now())
            permit.settle(Usage())

    loop.run(main)
    assert times == [float(i) for i in range(10)]
    assert loop.now() == 2.25


def test_the_limiter_waits_for_a_clock_the_loop_does_not_drive() -> None:
    """On a hand-driven clock the limiter admits the second request when that clock has moved one second,
    however long the loop waited meanwhile."""
    loop = FakeClock()
    user = ManualClock()
    admitted: list[tuple[float, float]] = []

    async def main() -> None:
        limiter = Limiter(Limits(requests_per_minute=60), clock=user)
        limiter.saw_response()
        (await limiter.acquire(0, 0)).settle(Usage())

        async def second() -> None:
            (await limiter.acquire(0, 0)).settle(Usage())
            admitted.append((user.now(), loop.now()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            for _ in range(4):
                await anyio.sleep(30.0)  # a long loop wait: the limiter must not wake on it
                user.advance(0.25)

    loop.run(main)
    assert admitted == [(1.0, 120.0)]


def test_wait_event_times_out_on_the_clock_it_is_given() -> None:
    """Two seconds on a clock four times faster than the loop end after half a loop second, and say so."""
    loop = FakeClock()
    seen: list[tuple[bool, float]] = []

    async def main() -> None:
        came = await wait_event(FourTimesFaster(loop), anyio.Event(), 2.0)
        seen.append((came, loop.now()))

    loop.run(main)
    assert seen == [(False, 0.5)]


def test_wait_event_returns_on_the_event_and_leaves_no_timer_behind() -> None:
    """An event set before a user clock's timeout ends the wait at once, and the sleep racing it is gone: no task
    is left waiting on the user's clock."""
    loop = FakeClock()
    seen: list[tuple[bool, float]] = []
    left: list[int] = []

    async def main() -> None:
        event = anyio.Event()

        async def setter() -> None:
            await anyio.sleep(0.25)
            event.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(setter)
            seen.append((await wait_event(FourTimesFaster(loop), event, 100.0), loop.now()))
        await anyio.lowlevel.checkpoint()  # a cancelled task finishes on its next step
        left.append(len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()]))

    loop.run(main)
    assert seen == [(True, 0.25)]
    assert left == [0]


def test_a_subclass_of_a_loop_timed_clock_waits_on_its_own_time() -> None:
    """A FakeClock subclass that halves time waits one of its seconds as two loop seconds: only the exact
    marked classes use the loop's timeouts."""
    clock = HalfSpeedFake()
    seen: list[float] = []

    async def main() -> None:
        await wait_event(clock, anyio.Event(), 1.0)
        seen.append(clock.now())

    clock.run(main)
    assert seen == [1.0]
    assert FakeClock.now(clock) == 2.0


@pytest.mark.parametrize("user_clock", [False, True], ids=["loop-timed", "user"])
def test_a_deadline_cancels_on_its_clock_and_lift_turns_it_off(user_clock: bool) -> None:
    """A Deadline of 2 clock seconds cancels a block still waiting then; a lifted one lets its block finish."""
    loop = FakeClock()
    clock: Clock = FourTimesFaster(loop) if user_clock else loop
    ends: list[tuple[str, float]] = []

    async def main() -> None:
        with Deadline(clock, 2.0) as first:
            await clock.sleep(10.0)
        ends.append(("cancelled" if first.scope.cancelled_caught else "ran", clock.now()))
        with Deadline(clock, 2.0) as second:
            await clock.sleep(1.0)
            second.lift()
            await clock.sleep(5.0)
        ends.append(("cancelled" if second.scope.cancelled_caught else "ran", clock.now()))

    loop.run(main)
    assert ends == [("cancelled", 2.0), ("ran", 8.0)]


def test_an_open_breaker_probes_after_its_interval_on_the_users_clock() -> None:
    """A breaker opened by a burst lets its probe out 0.5 s later on a clock four times faster than the loop: an
    eighth of a loop second."""
    loop = FakeClock()
    user = FourTimesFaster(loop)
    seen: list[tuple[str, float, float]] = []

    async def main() -> None:
        breaker = Breaker(user, window=4, min_failures=2, probe_interval=0.5)
        for _ in range(2):
            breaker.record(await breaker.wait_turn(), overloaded=True)
        state = breaker.state
        await breaker.wait_turn()
        seen.append((state, user.now(), loop.now()))

    loop.run(main)
    assert seen == [("open", 0.5, 0.125)]


def test_the_gateway_queue_deadline_is_on_the_users_clock() -> None:
    """A queued ticket whose 2 s deadline passes on a clock four times faster than the loop is refused after half
    a loop second."""
    loop = FakeClock()
    user = FourTimesFaster(loop)
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        scheduler = Scheduler(clock=user, max_entering=1)
        first = scheduler.submit("a", 1.0, "bulk", math.inf)
        await scheduler.wait_turn(first)
        second = scheduler.submit("a", 1.0, "bulk", 2.0)
        try:
            await scheduler.wait_turn(second)
        except Refused as refused:
            seen.append((refused.reason, loop.now()))

    loop.run(main)
    assert seen == [("deadline", 0.5)]


def test_many_cancelled_timeouts_do_not_disturb_exact_landing() -> None:
    """Thousands of waits that end on their event (each leaving a cancelled timer) still let time land exactly
    on the next live deadline."""
    clock = FakeClock()
    seen: list[float] = []

    async def main() -> None:
        for _ in range(2000):
            event = anyio.Event()
            event.set()
            with anyio.move_on_after(50.0):
                await anyio.lowlevel.checkpoint()
        await anyio.sleep(1.5)
        seen.append(clock.now())

    clock.run(main)
    assert seen == [1.5]
