"""What a face (the CLI) sees of a running job: hooks the job calls. The jobs layer never prints or renders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._events import Event
from .._stats import EngineStatistics

__all__ = ["JobView"]


def _ignore_text(text: str) -> None:
    """The default: a note nobody shows."""


def _ignore_count(count: int) -> None:
    """The default: a count nobody shows."""


def _ignore_skip() -> None:
    """The default: a skipped line nobody counts."""


def _ignore_statistics(statistics: Callable[[], EngineStatistics]) -> None:
    """The default: the engine's statistics are not read."""


@dataclass(frozen=True, kw_only=True)
class JobView:
    """Hooks into a running job, each optional: a display, a log, a test's recorder.

    `sinks` get the engine's events (and the errored result of each bad input line); `say` gets one-line notes
    for the user (duplicate lines, retried items, how a stop proceeds); `started` is told how many items earlier
    runs finished, `counted` how many lines the input has once they are counted, `skipped` each line not sent
    (a repeated id), and `engine` the engine's statistics callable once the engine runs.
    """

    sinks: Sequence[Callable[[Event], None]] = ()
    say: Callable[[str], None] = _ignore_text
    started: Callable[[int], None] = _ignore_count
    counted: Callable[[int], None] = _ignore_count
    skipped: Callable[[], None] = _ignore_skip
    engine: Callable[[Callable[[], EngineStatistics]], None] = _ignore_statistics

    def emit(self, event: Event) -> None:
        """Give an event to every sink."""
        for sink in self.sinks:
            sink(event)
