"""ProgressDisplay: plain lines on a non-terminal, Live refreshes on a terminal, the summary, clean cancel."""

from __future__ import annotations

import io

import anyio
from progress_helpers import ok
from rich.console import Console

from sluicegate._models import Usage
from sluicegate._stats import EngineStatistics, LimiterStatistics
from sluicegate.progress import ProgressDisplay, ProgressTracker
from sluicegate.testing import FakeClock


def _console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, force_terminal=terminal, color_system=None), out


def _run_until(display: ProgressDisplay, clock: FakeClock, stop_at: float) -> None:
    """Run the display on virtual time and cancel it at `stop_at`."""

    async def main() -> None:
        with anyio.move_on_after(stop_at):
            await display.run()

    clock.run(main)


def test_plain_lines_every_interval_then_nothing_on_cancel() -> None:
    """On a non-terminal one plain line is printed per plain_interval, and cancelling prints nothing more."""
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock, total=100)
    tracker(ok(0.5, usage=Usage(input_tokens=10)))
    calls: list[float] = []

    def statistics() -> EngineStatistics:
        calls.append(clock.now())
        return EngineStatistics(in_flight=2, limiter=LimiterStatistics(concurrency_limit=4))

    console, out = _console(terminal=False)
    display = ProgressDisplay(tracker, console=console, statistics=statistics, clock=clock, plain_interval=5.0)
    _run_until(display, clock, 21.0)
    lines = out.getvalue().splitlines()
    assert [line.split(" ")[0] for line in lines] == ["[5s]", "[10s]", "[15s]", "[20s]"]
    assert all("1/100 (1.0%)" in line and "in flight 2 (at most 4)" in line for line in lines)
    assert calls == [5.0, 10.0, 15.0, 20.0]  # one snapshot per line, none while sleeping or after the cancel
    assert clock.now() == 21.0


def test_live_view_refreshes_on_a_terminal() -> None:
    """On a terminal the Live view is redrawn every refresh_interval and leaves its last frame on cancel."""
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock, total=4)
    tracker(ok(0.1))
    frames: list[float] = []

    def statistics() -> EngineStatistics:
        frames.append(clock.now())
        return EngineStatistics()

    console, out = _console(terminal=True)
    display = ProgressDisplay(tracker, console=console, statistics=statistics, clock=clock, refresh_interval=0.25)
    _run_until(display, clock, 1.1)
    text = out.getvalue()
    # The first frame, a refresh every 0.25 s, and a last, current frame at the cancel.
    assert frames == [0.0, 0.25, 0.5, 0.75, 1.0, 1.1]
    assert "1/4 (25.0%)" in text
    assert "binding: none" in text
    assert "elapsed 1s" in text  # the frame drawn at t=1.0


def test_print_summary_uses_engine_statistics() -> None:
    """print_summary renders the final table with the engine's known limits."""
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock, total=1)
    tracker(ok(0.5, usage=Usage(input_tokens=100, output_tokens=10), cost=0.5))
    console, out = _console(terminal=False)
    stats = EngineStatistics(limiter=LimiterStatistics(requests_per_minute=60))
    display = ProgressDisplay(tracker, console=console, statistics=lambda: stats, clock=clock)
    display.print_summary(2.0)
    text = out.getvalue()
    assert "sluicegate summary" in text
    assert "50.0% (0.50/s of 1.00/s, bound by requests)" in text


def test_display_in_a_task_group_on_virtual_time() -> None:
    """Beside a producer of events on the shared FakeClock, plain lines show the run advancing every 5 s."""
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock, total=40)
    console, out = _console(terminal=False)
    display = ProgressDisplay(tracker, console=console, statistics=None, clock=clock, plain_interval=5.0)

    async def produce() -> None:
        await clock.sleep(0.5)  # off the display's 5-second ticks, so no two timers share a deadline
        for i in range(20):
            tracker(ok(clock.now(), index=i, cost=0.25))
            await clock.sleep(1.0)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(display.run)
            await produce()
            tg.cancel_scope.cancel()

    clock.run(main)
    lines = out.getvalue().splitlines()
    assert clock.now() == 20.5
    assert [line.split(" | ")[0] for line in lines] == [
        "[5s] 5/40 (12.5%)",
        "[10s] 10/40 (25.0%)",
        "[15s] 15/40 (37.5%)",
        "[20s] 20/40 (50.0%)",
    ]
    assert "cost $5.00 (proj $10.00)" in lines[-1]
    assert "eta 20s" in lines[-1]  # 20 remaining at 1/s


def test_the_live_view_ends_on_a_current_frame() -> None:
    """Results recorded after the last refresh are in the final frame: the view never stays at 99/100."""
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock, total=2)
    console, out = _console(terminal=True)
    display = ProgressDisplay(tracker, console=console, statistics=None, clock=clock, refresh_interval=0.25)

    async def main() -> None:
        with anyio.move_on_after(0.3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(display.run)
                await clock.sleep(0.26)  # just after the first refresh
                tracker(ok(0.26))
                tracker(ok(0.27))  # both finish after the last refresh, before the view is cancelled
                await clock.sleep(1.0)

    clock.run(main)
    assert "2/2 (100.0%)" in out.getvalue()
