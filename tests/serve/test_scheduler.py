"""The scheduler on virtual time: who enters the limiter when, who is sent back, and deadlines that expire."""

from __future__ import annotations

import anyio
import pytest

from sluicegate.serve._queue import Priority
from sluicegate.serve.scheduler import Refused, Scheduler
from sluicegate.testing import FakeClock

INTERVAL = 0.5  # the fake limiter admits one ticket every half second


class _Limiter:
    """Stands in for the real limiter: tickets inside it pass one at a time, INTERVAL apart, first come first."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.free_at = 0.0
        self.lock = anyio.Lock()

    async def pass_through(self) -> None:
        async with self.lock:
            await self.clock.sleep(max(0.0, self.free_at - self.clock.now()))
            self.free_at = self.clock.now() + INTERVAL


async def _request(
    scheduler: Scheduler, limiter: _Limiter, priority: Priority, log: list[tuple[str, float]], name: str, wait: float
) -> None:
    """What forward.py does with a ticket: wait the turn, pass the limiter unless sent back, then go out."""
    try:
        ticket = scheduler.submit("c", 1.0, priority, wait)
    except Refused as exc:
        log.append((f"{name} refused {exc.retry_after}", limiter.clock.now()))
        return
    try:
        while True:
            await scheduler.wait_turn(ticket)
            sent_back = ticket.preemptions
            with anyio.CancelScope() as scope:
                scheduler.entering(ticket, scope.cancel)
                await limiter.pass_through()
                scheduler.admitted(ticket)
            if ticket.preemptions == sent_back:
                break
        log.append((name, limiter.clock.now()))
    except Refused as exc:
        log.append((f"{name} expired {exc.retry_after}", limiter.clock.now()))
    finally:
        scheduler.leave(ticket)


def _run(main_body: object) -> list[tuple[str, float]]:
    clock = FakeClock()
    log: list[tuple[str, float]] = []

    async def main() -> None:
        scheduler = Scheduler(clock=clock, max_entering=1)
        limiter = _Limiter(clock)
        await main_body(scheduler, limiter, log, clock)  # type: ignore[operator]

    clock.run(main)
    return log


def test_interactive_arrival_sends_the_entering_bulk_ticket_back() -> None:
    """An interactive ticket takes the next admission; the bulk ticket it displaced goes next, before later bulk."""

    async def body(scheduler: Scheduler, limiter: _Limiter, log: list[tuple[str, float]], clock: FakeClock) -> None:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(_request, scheduler, limiter, "bulk", log, f"b{i}", 60.0)
            await clock.sleep(0.6)  # b0 went at 0, b1 at 0.5; b2 is inside the limiter until 1.0
            tg.start_soon(_request, scheduler, limiter, "interactive", log, "i", 60.0)

    log = _run(body)
    assert log == [("b0", 0.0), ("b1", 0.5), ("i", 1.0), ("b2", 1.5), ("b3", 2.0)]


def test_deadline_passes_in_the_queue_and_the_429_names_the_remaining_wait() -> None:
    """A ticket whose deadline passes while it waits leaves at its deadline, never later, with the wait left."""

    async def body(scheduler: Scheduler, limiter: _Limiter, log: list[tuple[str, float]], clock: FakeClock) -> None:
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(_request, scheduler, limiter, "bulk", log, f"b{i}", 60.0)
            await clock.sleep(0.1)
            # No rate measured yet, so it is queued; it would go sixth at 3.0, but may wait only 1 s.
            tg.start_soon(_request, scheduler, limiter, "bulk", log, "late", 1.0)

    log = _run(body)
    late = [entry for entry in log if entry[0].startswith("late")]
    assert len(late) == 1
    assert late[0][0].startswith("late expired")
    assert late[0][1] == pytest.approx(1.1)  # its deadline: submitted at 0.1 with 1 s to wait


def test_known_rate_refuses_at_once_with_the_wait() -> None:
    """Once the admission rate is measured, a deadline that cannot be met is refused at submit, with the wait."""

    async def body(scheduler: Scheduler, limiter: _Limiter, log: list[tuple[str, float]], clock: FakeClock) -> None:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(_request, scheduler, limiter, "bulk", log, f"b{i}", 60.0)
            await clock.sleep(3.1)  # admissions at 0, 0.5, ... 3.0 (seven); 12 queued, 1 inside the limiter
            tg.start_soon(_request, scheduler, limiter, "bulk", log, "hurry", 2.0)

    log = _run(body)
    refused = [entry for entry in log if entry[0].startswith("hurry")]
    assert refused[0][1] == pytest.approx(3.1)  # at once
    promised = float(refused[0][0].split()[-1])
    # 13 ahead of it, then itself: the 14th admission after the one at 3.0, 0.5 s apart.
    assert promised == pytest.approx(3.0 + 14 * INTERVAL - 3.1)
