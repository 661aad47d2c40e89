"""ProgressDisplay: refreshes a rich Live view on a terminal, or prints a plain line every few seconds."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, RenderableType
from rich.live import Live

from .._clock import Clock
from .._stats import EngineStatistics
from ._render import render_live, render_plain, render_summary
from ._tracker import ProgressSnapshot, ProgressTracker

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Drives the rendering of a ProgressTracker; run `run()` in the engine's task group and cancel it at the end.

    Each refresh renders one snapshot synchronously (a few hundred microseconds), then sleeps on the clock, so
    the event loop is never held for long. No thread is started: the Live view refreshes only from here.
    """

    def __init__(
        self,
        tracker: ProgressTracker,
        *,
        console: Console,
        statistics: Callable[[], EngineStatistics] | None,
        clock: Clock,
        refresh_interval: float = 0.25,
        plain_interval: float = 5.0,
        minute: float = 60.0,
    ) -> None:
        if refresh_interval <= 0 or plain_interval <= 0:
            raise ValueError("refresh intervals must be positive")
        self._tracker = tracker
        self._console = console
        self._statistics = statistics
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._plain_interval = plain_interval
        self._minute = minute  # real seconds per rate-limit minute: figures are shown in the server's minutes

    def snapshot(self) -> ProgressSnapshot:
        """The tracker's state with the engine's statistics, if any."""
        stats = self._statistics() if self._statistics is not None else None
        return self._tracker.snapshot(stats)

    def _live_view(self) -> RenderableType:
        return render_live(self.snapshot(), minute=self._minute)

    async def run(self) -> None:
        """Refresh until cancelled; on cancellation the Live view shows a last, current frame (never a stale 99%)."""
        if self._console.is_terminal:
            await self._run_live()
        else:
            await self._run_plain()

    async def _run_live(self) -> None:
        # auto_refresh=False: rich would otherwise refresh from its own thread, reading the tracker concurrently.
        with Live(self._live_view(), console=self._console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await self._clock.sleep(self._refresh_interval)
                    live.update(self._live_view(), refresh=True)
            finally:
                live.update(self._live_view(), refresh=True)  # synchronous: runs even while being cancelled

    async def _run_plain(self) -> None:
        while True:
            await self._clock.sleep(self._plain_interval)
            self._console.print(
                render_plain(self.snapshot(), minute=self._minute), markup=False, highlight=False, soft_wrap=True
            )

    def print_summary(self, wall_time: float) -> None:
        """Print the final summary table."""
        self._console.print(render_summary(self.snapshot(), wall_time))
