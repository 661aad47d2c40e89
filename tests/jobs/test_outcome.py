"""The final message of a job that ran to its end says what happened, including when there was nothing to do."""

from __future__ import annotations

from pathlib import Path

from sluicegate.jobs.outcome import ExitCode, finished_outcome
from sluicegate.jobs.store import StoreCounts


def test_an_empty_input_says_nothing_was_sent() -> None:
    """No request lines: exit 0 with "nothing was sent", not "all 0 item(s) succeeded"."""
    outcome = finished_outcome(StoreCounts(total=0, pending=0, done=0, failed=0, invalid=0), Path("o.jsonl"), "", {})
    assert outcome.exit_code == ExitCode.OK
    assert outcome.message == "the input has no request lines (empty, or blank lines only): nothing was sent"


def test_a_finished_job_counts_its_successes() -> None:
    """All done: exit 0 naming how many and where; any failed or invalid line: exit 1 naming both counts."""
    done = finished_outcome(StoreCounts(total=3, pending=0, done=3, failed=0, invalid=0), Path("o.jsonl"), "", {})
    assert (done.exit_code, done.message) == (ExitCode.OK, "all 3 item(s) succeeded; results in o.jsonl")
    mixed = finished_outcome(StoreCounts(total=3, pending=0, done=1, failed=1, invalid=1), Path("o.jsonl"), "", {})
    assert mixed.exit_code == ExitCode.FAILED_ITEMS
    assert mixed.message.startswith("finished with 1 failed and 1 invalid item(s)")
