"""The demo's live progress: shown from the start, per system, before any system finishes."""

from __future__ import annotations

import io
import threading

import pytest
from click.testing import CliRunner
from rich.console import Console

from sluicegate.cli import main
from sluicegate.demo.peers import Outcome
from sluicegate.demo.progress import DemoProgress, SystemProgress, progress_line, shown
from sluicegate.demo.run import DemoSettings, label_of, run_demo

SMALL = DemoSettings(documents=8, rpm=120, minute=1.0, latency_low=1.0, latency_high=2.0, peer_cap=10.0)


@pytest.mark.e2e
def test_progress_reports_each_document_before_the_first_system_finishes() -> None:
    """Progress says which system runs and counts its documents one by one, before that system's row exists."""
    systems = ("sequential", "sluicegate")
    events: list[tuple[str, object]] = []
    seen: list[list[SystemProgress]] = []
    progress: DemoProgress

    def on_change(state: SystemProgress) -> None:
        events.append(("progress", state))
        if state.system == "sequential" and state.state == "running" and state.done == 1:
            seen.append(progress.snapshot())

    progress = DemoProgress([(s, label_of(s)) for s in systems], SMALL.documents, on_change=on_change)
    rows = run_demo(SMALL, systems, on_row=lambda row: events.append(("row", row)), progress=progress)

    first_row = next(i for i, (kind, _) in enumerate(events) if kind == "row")
    before = [e for kind, e in events[:first_row] if kind == "progress"]
    assert isinstance(before[0], SystemProgress)
    assert (before[0].system, before[0].state, before[0].done) == ("sequential", "running", 0)
    running = [s.done for s in before if isinstance(s, SystemProgress) and s.state == "running"]
    assert running == list(range(SMALL.documents + 1))  # 0 at the start, then every document as it comes back
    # While the first system runs, the snapshot shows it running and the next one waiting.
    (snapshot,) = seen
    assert [(s.system, s.state, s.done) for s in snapshot] == [
        ("sequential", "running", 1),
        ("sluicegate", "waiting", 0),
    ]
    final = progress.snapshot()
    assert [(s.state, s.answered, s.failed) for s in final] == [("done", 8, 0), ("done", 8, 0)]
    assert [s.rate_limited for s in final] == [r.rate_limited for r in rows]


@pytest.mark.e2e
def test_demo_command_prints_progress_before_the_table() -> None:
    """Piped, `sluicegate demo` prints a line as each system starts and stops, before the final table."""
    result = CliRunner().invoke(main, ["demo", "--documents", "6", "--system", "sequential", "--system", "sluicegate"])
    assert result.exit_code == 0, result.output
    out = result.output
    started = out.index("for loop: running, 0/6 documents back")
    stopped = out.index("for loop: done, 6/6 documents back (6 answered, 0 failed)")
    ours = out.index("sluicegate: done, 6/6 documents back (6 answered, 0 failed)")
    table = out.index("wall s")
    assert started < stopped < ours < table
    assert "placeholder words" in out


def test_progress_line_names_the_system_and_its_counts() -> None:
    """A plain progress line carries the label, state, documents back, answered, failed, 429s and time."""
    state = SystemProgress("gather", "asyncio.gather", 100, "running", 40, 3, 17, 2.5)
    assert progress_line(state) == (
        "  asyncio.gather: running, 43/100 documents back (40 answered, 3 failed), 17 429s, 2.5 s"
    )
    assert progress_line(SystemProgress("gather", "asyncio.gather", 100)) == "  asyncio.gather: waiting"


class _Lines(io.StringIO):
    """A console file that signals once `wanted` has been printed twice."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted = wanted
        self.twice = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count(self.wanted) >= 2:
            self.twice.set()
        return written


def test_piped_progress_repeats_the_running_systems_line() -> None:
    """Not on a terminal, the running system's line is printed again and again; waiting systems stay quiet."""
    progress = DemoProgress([("gather", "asyncio.gather"), ("sluicegate", "sluicegate")], 10)
    progress.started("gather")
    for i in range(3):
        progress.outcome("gather", Outcome(f"doc-{i}", "[tag] alpha", None, 1, 0.0))
    progress.outcome("gather", Outcome("doc-3", None, "RateLimitError: 429", 3, 0.0))
    out = _Lines("asyncio.gather: running, 4/10 documents back (3 answered, 1 failed)")
    console = Console(file=out, force_terminal=False, width=200)
    with shown(progress, console, every=0.01):
        assert out.twice.wait(10)
    assert "sluicegate" not in out.getvalue()
