"""The CLI's face for a job: a live progress view and the final summary around a job that shows nothing itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from rich.console import Console

from sluicegate._clock import Clock, SystemClock
from sluicegate._stats import EngineStatistics
from sluicegate.jobs._view import JobView
from sluicegate.jobs.outcome import JobOutcome
from sluicegate.pricing import PriceTable, load_prices
from sluicegate.progress import ProgressDisplay, ProgressTracker

__all__ = ["show_job"]

Job = Callable[[JobView, Clock], Awaitable[JobOutcome]]


async def show_job(
    job: Job, *, console: Console, quiet: bool, minute: float = 60.0, prices: PriceTable | None = None
) -> JobOutcome:
    """Run `job` with a progress view on `console` (unless quiet), then print its summary table.

    `minute` is the server's rate-limit minute in real seconds (6 with the built-in emulator): the view shows
    limits and rates in the server's own minutes and says so once. `prices` also price what cache reads saved.
    """
    clock = SystemClock()
    tracker = ProgressTracker(clock=clock, total=None, uncached_cost=load_prices(prices).cost)
    statistics: list[Callable[[], EngineStatistics]] = []

    def engine_statistics() -> EngineStatistics:
        return statistics[0]() if statistics else EngineStatistics()

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    def started(count: int) -> None:
        tracker.already_done = count

    def counted(count: int) -> None:
        tracker.total = count

    view = JobView(
        sinks=[tracker],
        say=say,
        started=started,
        counted=counted,
        skipped=tracker.skip,
        engine=statistics.append,
    )
    display = ProgressDisplay(tracker, console=console, statistics=engine_statistics, clock=clock, minute=minute)
    async with anyio.create_task_group() as tg:
        if not quiet:
            tg.start_soon(display.run)
        outcome = await job(view, clock)
        tg.cancel_scope.cancel()
    if not quiet and outcome.wall is not None:
        display.print_summary(outcome.wall)
    return outcome
