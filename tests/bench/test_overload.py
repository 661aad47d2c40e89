"""The faults scenario's recovery figures, computed from an emulator log made up here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import FaultSpec

ROOT = Path(__file__).resolve().parents[2]


def test_the_window_is_the_first_scheduled_overload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scattered faults are skipped; the first overload with a start and an end is the window."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.overload import overload_window

    faults = (FaultSpec(kind="overloaded", probability=0.05), FaultSpec(kind="overloaded", start=3.0, end=13.0))
    assert overload_window(faults) == (3.0, 13.0)
    assert overload_window((FaultSpec(kind="api_error", start=1.0, end=2.0),)) is None


def test_recovery_figures_from_the_emulators_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 documents, 4 done before the window [2, 4) ends, buckets of 2 requests refilled at 1 per second: a perfect
    client needs 4 s for the other 6; this run's last answer came 5 s after the window, its first success 0.5 s."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.overload import after_window

    answers: list[list[Any]] = [[1.0, 200]] * 4 + [[2.5, 529], [3.5, 529], [4.5, 200], [9.0, 200]]
    timeline = [{"second": 2, "requests": 5}, {"second": 3, "requests": 1}, {"second": 4, "requests": 3}]
    figures = after_window(
        (2.0, 4.0),
        {"answers": answers, "timeline": timeline},
        documents=10,
        limits=(2.0, 1_000.0, 1_000.0),
        minute=2.0,
        cost=(1.0, 10.0, 10.0),
        latency=0.5,
        ceiling_per_s=1.0,
    )
    assert figures["window_requests"] == 6
    assert figures["window_per_second"] == [5, 1]
    assert figures["done_before_end"] == 4
    assert (figures["first_ok_s"], figures["end_s"], figures["best_s"]) == (0.5, 5.0, 4.0)
    assert (figures["of_best"], figures["of_best_latency"]) == (0.8, 0.9)
    assert figures["steady_s"] == 0.5  # one completion in a second already reaches 90% of 1 per second
