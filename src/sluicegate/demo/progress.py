"""The demo's live progress: per system, what is running and how many documents are answered or failed so far."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sluicegate.demo.peers import Outcome

__all__ = ["DemoProgress", "SystemProgress", "progress_line", "progress_table", "shown"]


@dataclass(frozen=True, slots=True)
class SystemProgress:
    """One system's state at a moment: "waiting", "running", or its final status once it has stopped."""

    system: str
    label: str
    total: int
    state: str = "waiting"
    answered: int = 0  # documents with an answer (right or wrong)
    failed: int = 0  # documents the code reported an error for
    rate_limited: int = 0  # 429s the API sent this system so far
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return self.answered + self.failed


class DemoProgress:
    """Thread-safe progress of a demo run, fed by the runner and read by whatever displays it.

    `on_change` is called (in the thread that made the change) with the changed system's new state: when it
    starts, on every outcome, and when it stops. `rate_limited` is how a snapshot learns the 429s the API has
    sent to the running system so far; the runner sets it while a system runs.
    """

    def __init__(
        self, systems: Sequence[tuple[str, str]], total: int, on_change: Callable[[SystemProgress], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._states = {name: SystemProgress(name, label, total) for name, label in systems}
        self._started: dict[str, float] = {}
        self._on_change = on_change
        self.rate_limited: Callable[[], int] | None = None

    def started(self, system: str) -> None:
        """`system` begins."""
        with self._lock:
            self._started[system] = time.monotonic()
            state = self._states[system] = replace(self._states[system], state="running")
        self._changed(state)

    def outcome(self, system: str, outcome: Outcome) -> None:
        """`system` finished one document (each document reports once)."""
        with self._lock:
            old = self._states[system]
            if outcome.text is None:
                state = replace(old, failed=old.failed + 1)
            else:
                state = replace(old, answered=old.answered + 1)
            self._states[system] = state
        self._changed(state)

    def finished(self, system: str, status: str, wall: float, rate_limited: int) -> None:
        """`system` stopped with `status` ("done", "timed out", ...) after `wall` seconds."""
        with self._lock:
            state = replace(self._states[system], state=status, elapsed=wall, rate_limited=rate_limited)
            self._states[system] = state
        self._changed(state)

    def snapshot(self) -> list[SystemProgress]:
        """Every system's state now, in run order; the running one with its elapsed time and 429s so far."""
        probe = self.rate_limited
        with self._lock:
            states = list(self._states.values())
            started = dict(self._started)
        now = time.monotonic()
        out: list[SystemProgress] = []
        for state in states:
            if state.state == "running":
                state = replace(state, elapsed=now - started[state.system])
                if probe is not None:
                    state = replace(state, rate_limited=_probe(probe))
            out.append(state)
        return out

    def _changed(self, state: SystemProgress) -> None:
        if self._on_change is not None:
            self._on_change(state)


def _probe(probe: Callable[[], int]) -> int:
    try:
        return probe()
    except OSError:  # the emulator is between systems or shutting down: the count is not known at this moment
        return 0


def progress_line(state: SystemProgress) -> str:
    """One plain line for logs and pipes."""
    if state.state == "waiting":
        return f"  {state.label}: waiting"
    return (
        f"  {state.label}: {state.state}, {state.done}/{state.total} documents back "
        f"({state.answered} answered, {state.failed} failed), {state.rate_limited} 429s, {state.elapsed:.1f} s"
    )


def progress_table(states: Sequence[SystemProgress]) -> Table:
    """The live panel on a terminal: one row per system."""
    table = Table(title="Progress (each system runs on its own, on fresh limits)", title_justify="left")
    table.add_column("system")
    table.add_column("state")
    table.add_column("back", justify="right")
    table.add_column("answered", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("429s", justify="right")
    table.add_column("time", justify="right")
    for s in states:
        if s.state == "waiting":
            table.add_row(s.label, "waiting", "", "", "", "", "")
            continue
        table.add_row(
            s.label,
            s.state,
            f"{s.done}/{s.total}",
            str(s.answered),
            str(s.failed),
            str(s.rate_limited),
            f"{s.elapsed:.1f} s",
        )
    return table


@contextlib.contextmanager
def shown(progress: DemoProgress, console: Console, *, every: float = 5.0) -> Iterator[None]:
    """While inside: a live panel on a terminal; otherwise the running system's line every `every` seconds."""
    if console.is_terminal:
        with Live(get_renderable=lambda: progress_table(progress.snapshot()), console=console, transient=True):
            yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            for state in progress.snapshot():
                if state.state == "running":
                    console.print(progress_line(state), highlight=False, soft_wrap=True)

    ticker = threading.Thread(target=tick, name="demo-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
