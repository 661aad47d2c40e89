"""The demo's core against the real emulator, on a tiny workload."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from sluicegate.cli import main
from sluicegate.cli.demo import demo
from sluicegate.demo.peers import Outcome
from sluicegate.demo.run import SYSTEMS, DemoSettings, Row, render_table, run_demo
from sluicegate.demo.workload import accepted_tags, make_documents, tally

TINY = DemoSettings(documents=12, rpm=120, minute=1.0, burst=4, latency_low=1.0, latency_high=4.0, peer_cap=10.0)
# One request per 1.5 s minute: the full bucket answers one document, the next token comes long after the
# backoff snippet's 5 attempts (about 0.5 s of sleeps) are spent.
STARVED = DemoSettings(documents=6, rpm=1, minute=1.5, latency_low=1.0, latency_high=1.0, peer_cap=20.0)


def table_row(rows: list[Row], settings: DemoSettings, label: str) -> list[str]:
    """The cells of `label`'s line in the rendered table, as printed."""
    console = Console(width=120, record=True)
    console.print(render_table(rows, settings))
    lines = [line for line in console.export_text().splitlines() if line.strip().startswith(label)]
    assert len(lines) == 1
    return lines[0].strip()[len(label) :].split()


@pytest.mark.e2e
def test_demo_rows_score_every_system() -> None:
    """Each system gets a row whose counts add up and agree with the server; sluicegate loses nothing."""
    rows = run_demo(TINY)
    assert [r.system for r in rows] == list(SYSTEMS)
    for row in rows:
        assert row.status == "done"
        assert row.wrong == 0
        assert row.ok + row.failed + row.missing == TINY.documents
        # No faults are injected: every 200 the emulator sent is one answered document, the rest are 429s.
        assert row.answered == row.requests - row.rate_limited
    sequential, gather = rows[0], rows[1]
    assert sequential.ok == TINY.documents
    assert gather.missing == 0  # gather reports every error it gets; it never drops silently
    ours = rows[3]
    assert (ours.ok, ours.failed, ours.wrong, ours.missing) == (TINY.documents, 0, 0, 0)
    assert table_row(rows, TINY, "sluicegate")[1:] == [str(ours.rate_limited), "12", "0", "0", "yes"]


@pytest.mark.e2e
def test_backoff_snippet_drops_documents_as_missing() -> None:
    """The Semaphore(10)+2^n snippet, out of retries under 429s, drops documents: counted missing, not failed."""
    (row,) = run_demo(STARVED, systems=("semaphore10",))
    assert row.status == "done"
    assert row.failed == 0
    assert row.missing >= 1
    assert row.answered + row.missing == STARVED.documents
    assert row.answered == row.requests - row.rate_limited
    assert row.rate_limited >= 5 * row.missing  # each dropped document met all 5 of its attempts refused
    _wall, rate_limited, answered, failed, missing, matched = table_row([row], STARVED, "Semaphore(10)+2^n")
    assert (rate_limited, answered, failed, missing, matched) == (
        str(row.rate_limited),
        str(row.answered),
        "0",
        str(row.missing),
        "yes",
    )


@pytest.mark.e2e
def test_gather_snippet_errors_are_failed_not_missing() -> None:
    """`asyncio.gather` with the SDK's retries gets RateLimitErrors: those documents are failed, none missing."""
    (row,) = run_demo(STARVED, systems=("gather",))
    assert row.status == "done"
    assert row.missing == 0
    assert row.failed >= 1
    assert row.answered + row.failed == STARVED.documents
    assert row.rate_limited >= 3 * row.failed  # the SDK's first try and 2 retries, all refused
    assert table_row([row], STARVED, "asyncio.gather")[3:5] == [str(row.failed), "0"]


def test_tally_tells_answered_failed_wrong_and_missing_apart() -> None:
    """A right answer, an error, another prompt's answer and no outcome at all land in four different counts."""
    docs = make_documents(4)
    right = "[" + min(accepted_tags(docs[0])) + "] alpha"
    other = "[" + min(accepted_tags(docs[3])) + "] alpha"
    outcomes = {
        "doc-0000000": Outcome("doc-0000000", right, None, 1, 0.1),
        "doc-0000001": Outcome("doc-0000001", None, "RateLimitError: 429", 3, 0.2),
        "doc-0000002": Outcome("doc-0000002", other, None, 1, 0.3),
    }
    t = tally(docs, outcomes)
    assert (t.ok, t.failed, t.wrong, t.missing) == (1, 1, 1, 1)


@pytest.mark.e2e
def test_demo_peer_time_cap_reports_timed_out() -> None:
    """A system slower than the cap is stopped and reported as timed out, with its unfinished work missing."""
    slow = DemoSettings(documents=40, rpm=600, minute=6.0, latency_low=3.0, latency_high=3.0, peer_cap=0.8)
    rows = run_demo(slow, systems=("sequential", "semaphore10"))
    assert [r.status for r in rows] == ["timed out", "timed out"]
    for row in rows:
        assert row.missing > 0
    console = Console(width=120, record=True)
    console.print(render_table(rows, slow))
    assert "for loop was stopped at the 0.8 s cap" in console.export_text()


def test_demo_help_has_an_example_and_every_option_is_explained() -> None:
    """`demo --help` shows an example and explains every option; the top-level listing shows its whole line."""
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "sluicegate demo --quick --system gather --system sluicegate" in result.output
    options = [p for p in demo.params if isinstance(p, click.Option)]
    assert {o.name for o in options} == {"documents", "quick", "systems"}
    for option in options:
        assert option.help, option.name
        assert option.opts[0] in result.output
    listing = CliRunner().invoke(main, ["--help"]).output
    assert "Race the usual asyncio snippets against sluicegate on a local API." in listing  # whole, not cut
