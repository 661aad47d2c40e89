"""The demo's core against the real emulator, on a tiny workload."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from rich.console import Console

from sluicegate.cli import main
from sluicegate.demo.run import SYSTEMS, DemoSettings, render_table, run_demo

TINY = DemoSettings(documents=12, rpm=120, minute=1.0, burst=4, latency_low=1.0, latency_high=4.0, peer_cap=10.0)


@pytest.mark.e2e
def test_demo_rows_score_every_system() -> None:
    """Each system gets one row; naive peers answer correctly; sluicegate answers every document, none failed."""
    rows = run_demo(TINY)
    assert [r.system for r in rows] == list(SYSTEMS)
    for row in rows[:3]:
        assert row.status == "done"
        assert row.wrong == 0
        assert row.missing == 0
        assert row.ok + row.failed == TINY.documents
        assert row.requests >= TINY.documents
    sequential = rows[0]
    assert sequential.ok == TINY.documents
    ours = rows[3]
    assert ours.status == "done"
    assert (ours.ok, ours.failed, ours.wrong, ours.missing) == (TINY.documents, 0, 0, 0)
    console = Console(width=140, record=True)
    console.print(render_table(rows, TINY))
    text = console.export_text()
    assert "for loop" in text
    assert "asyncio.gather" in text


@pytest.mark.e2e
def test_demo_peer_time_cap_reports_timed_out() -> None:
    """A system slower than the cap is stopped and reported as timed out, with its unfinished work missing."""
    slow = DemoSettings(documents=40, rpm=600, minute=6.0, latency_low=3.0, latency_high=3.0, peer_cap=0.8)
    rows = run_demo(slow, systems=("sequential", "semaphore10"))
    assert [r.status for r in rows] == ["timed out", "timed out"]
    for row in rows:
        assert row.missing > 0
        assert row.wall < 5.0


def test_demo_cli_help() -> None:
    """`sluicegate demo` is wired into the command group."""
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--documents" in result.output
    assert "--quick" in result.output
