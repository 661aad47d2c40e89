"""Smoke test of the benchmark harness: one tiny scenario, one system, in a child process, scored and reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_tiny_scenario_runs_scores_and_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A child runs the Semaphore(20) peer on 20 documents; every answer is its own; RESULTS-style table is written."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.runner import run_scenario
    from bench.scenarios import Scenario

    from bench import report

    tiny = Scenario(
        name="seed100",
        summary="tiny",
        documents=20,
        quick_documents=20,
        rpm=600,
        itpm=1_000_000,
        otpm=1_000_000,
        minute=6.0,
        latency=(0.5, 1.0),
        quick_cap=10.0,
    )
    runs = run_scenario(
        tiny,
        ["semaphore20", "langchain"],
        quick=True,
        seed=3,
        python_for={"semaphore20": sys.executable},
        unavailable={"langchain": "not installed in this test"},
        log=lambda _line: None,
    )
    ours, skipped = runs
    assert (ours.status, ours.ok, ours.failed, ours.wrong, ours.missing) == ("done", 20, 0, 0, 0)
    assert ours.requests >= 20
    assert ours.cpu > 0
    assert len(ours.completion_times) == 20
    assert skipped.status == "not run: not installed in this test"
    out = tmp_path / "RESULTS.md"
    report.write(
        {"seed100": {"semaphore20": [ours], "langchain": [skipped]}},
        commands=[{"date": "2026-01-01 00:00 UTC", "command": "python -m bench seed100"}],
        quick=True,
        repeats=1,
        versions={"python": "3"},
        unavailable={"langchain": "not installed in this test"},
        path=out,
    )
    text = out.read_text(encoding="utf-8")
    assert "| semaphore20 | done |" in text
    assert "langchain: not installed in this test" in text
    assert "- Command: `python -m bench seed100`" in text
    assert "- Date: 2026-01-01 00:00 UTC" in text
