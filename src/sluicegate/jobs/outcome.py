"""How a job ended, in terms every front end can use: an exit code, a message for the user, the counts by state.

The jobs layer shows nothing itself; a CLI maps the outcome to its exit status, a server to its reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._disk import NoSpace
from .store import StoreCounts

__all__ = ["ExitCode", "JobOutcome", "finished_outcome", "no_space_outcome", "unfinished_count"]


class ExitCode:
    OK = 0
    FAILED_ITEMS = 1  # the run finished but some items ended in error (including invalid input lines)
    USAGE = 2  # bad flags or a refused resume (click uses 2 for usage errors too)
    BUDGET = 3  # --max-cost stopped admission; unfinished items stay pending
    ABORTED = 4  # bad key, spend cap / quota: the run stopped; unfinished items stay pending
    NO_SPACE = 5  # the disk is full (or a file-size limit was hit): what was saved is safe; free space and resume
    INTERRUPTED = 130  # Ctrl-C; unfinished items stay pending


@dataclass
class JobOutcome:
    """How a job ended: the exit code for a CLI, the message for the user, the counts by state, and how long
    it ran (None when it stopped before sending anything, so there is nothing to summarise)."""

    exit_code: int
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    wall: float | None = None


def finished_outcome(counts: StoreCounts, output: Path, note: str, summary: dict[str, int]) -> JobOutcome:
    """The outcome of a job that ran to its end: all succeeded (exit 0), or some failed or invalid (exit 1)."""
    duplicates = (
        f"; {counts.duplicate} line(s) skipped because an earlier line has the same id (the first one ran)"
        if counts.duplicate
        else ""
    )
    if counts.failed or counts.invalid or counts.duplicate:
        return JobOutcome(
            ExitCode.FAILED_ITEMS,
            f"finished with {counts.failed} failed and {counts.invalid} invalid item(s){duplicates}; "
            f"see {output} (re-run failed ones with --retry-failed){note}",
            summary,
        )
    if counts.total == 0:  # "all 0 item(s) succeeded" reads as a success that did something
        return JobOutcome(
            ExitCode.OK, f"the input has no request lines (empty, or blank lines only): nothing was sent{note}", summary
        )
    return JobOutcome(ExitCode.OK, f"all {counts.done} item(s) succeeded; results in {output}{note}", summary)


def no_space_outcome(failed: NoSpace, resume: str, summary: dict[str, int]) -> JobOutcome:
    """The outcome of a job stopped by a full disk: nothing committed is lost, so freeing space and resuming is all."""
    return JobOutcome(
        ExitCode.NO_SPACE,
        f"stopped: {failed.describe()}. Every result saved before is safe; free some space and resume with: {resume}",
        summary,
    )


def unfinished_count(counts: StoreCounts, lines: int) -> int:
    """Input lines without a final result: pending items plus lines not read yet (`lines` counts the input's)."""
    finished = counts.done + counts.failed + counts.invalid + counts.duplicate
    return max(counts.pending, lines - finished)
