"""The run timeline: bounded in rows whatever the run's length, summed exactly, and one segment per run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sluicegate._events import AttemptFailed, RequestAdmitted, RequestCompleted
from sluicegate._models import Result, Usage
from sluicegate._stats import EngineStatistics, LimiterStatistics
from sluicegate.jobs import JobStore
from sluicegate.jobs.timeline import TimelineRecorder
from sluicegate.jobs.timeline_rows import bin_lower, latency_bin, read_segments

from .conftest import SETTINGS


class FakeTime:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _success(at: float, index: int) -> RequestCompleted:
    usage = Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=50)
    message = {"model": "claude-haiku-4-5", "content": []}
    return RequestCompleted(
        at=at,
        result=Result(
            index, f"id-{index}", message=message, usage=usage, cost=0.001, attempts=1, latency=0.8, ttft=0.8
        ),
    )


def _statistics() -> EngineStatistics:
    return EngineStatistics(
        limiter=LimiterStatistics(
            in_flight=3, concurrency_limit=7, waiting=2, requests_per_minute=600.0, binding="requests"
        )
    )


def test_a_long_run_stays_within_the_row_budget_and_keeps_every_count(tmp_path: Path) -> None:
    """100,000 seconds of events fit in 64 rows of 2,048 s each, and the totals are exactly what was fed."""
    clock = FakeTime()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
    recorder = TimelineRecorder(store.path, now=clock, row_budget=64)
    recorder.watch(_statistics)
    for i in range(100_000):
        clock.t = 1000.0 + i + 0.5
        recorder(
            RequestAdmitted(
                at=clock.t,
                index=i,
                custom_id=f"id-{i}",
                attempt=1,
                input_tokens_estimate=100,
                output_tokens_reserved=20,
                in_flight=3,
            )
        )
        recorder(_success(clock.t, i))
        if i % 1000 == 0:
            recorder(
                AttemptFailed(
                    at=clock.t,
                    index=i,
                    custom_id=f"id-{i}",
                    attempt=1,
                    reason="rate_limited",
                    status=429,
                    will_retry=True,
                    delay=1.0,
                    message="slow down",
                )
            )
    store.commit()
    recorder.close()
    store.close()
    conn = sqlite3.connect(tmp_path / "job.db")
    (segment,) = read_segments(conn)
    conn.close()
    assert len(segment.rows) <= 64
    assert segment.width == 2048.0
    rows = segment.rows.values()
    assert sum(r.succeeded for r in rows) == 100_000
    assert sum(r.admitted for r in rows) == 100_000
    assert sum(r.rate_limited for r in rows) == 100
    assert sum(r.cache_read_tokens for r in rows) == 5_000_000
    assert sum(sum(r.latency.values()) for r in rows) == 100_000
    assert max(r.in_flight_max for r in rows) == 3
    assert {r.rpm for r in rows} == {600.0}
    assert segment.examples == {"rate_limited": ["HTTP 429: slow down"] * 3}


def test_each_run_of_a_job_is_a_segment_of_its_own(tmp_path: Path) -> None:
    """Two runs against one store give two segments, in order, each with its own rows."""
    clock = FakeTime()
    for run, count in enumerate((3, 5)):
        store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
        recorder = TimelineRecorder(store.path, now=clock)
        for i in range(count):
            clock.t += 1.0
            recorder(_success(clock.t, run * 10 + i))
        store.commit()
        recorder.close()
        store.close()
    conn = sqlite3.connect(tmp_path / "job.db")
    segments = read_segments(conn)
    conn.close()
    assert [sum(r.succeeded for r in s.rows.values()) for s in segments] == [3, 5]
    assert segments[0].run < segments[1].run


def test_a_flush_while_the_store_holds_its_lock_waits_for_the_next_one(tmp_path: Path) -> None:
    """While the job store has a write open, a flush neither blocks nor fails; the rows go out once it commits."""
    clock = FakeTime()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
    recorder = TimelineRecorder(store.path, now=clock)
    recorder(_success(clock.t, 0))
    store.reset_failed()  # commits; then take the write lock by hand, as a batch of results in progress does
    locker = sqlite3.connect(tmp_path / "job.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    recorder.flush()
    locker.execute("ROLLBACK")
    locker.close()
    recorder.close()
    store.close()
    conn = sqlite3.connect(tmp_path / "job.db")
    (segment,) = read_segments(conn)
    conn.close()
    assert sum(r.succeeded for r in segment.rows.values()) == 1


def test_latency_bins_are_ordered_and_bracket_their_values() -> None:
    """Every latency from 1 ms to an hour falls in a bin whose edges bracket it (the top bin is open-ended)."""
    for value in (0.001, 0.013, 0.2, 0.75, 1.0, 9.9, 61.0, 3600.0):
        b = latency_bin(value)
        assert bin_lower(b) <= value
        assert b == 0 or value < bin_lower(b + 1) * 1.0000001


def test_a_failing_store_commit_leaves_the_rows_for_later_and_raises_nothing(tmp_path: Path) -> None:
    """When the store cannot commit (a full disk), persist writes nothing and the rows go out at the next chance."""
    clock = FakeTime()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
    recorder = TimelineRecorder(store.path, now=clock)
    recorder(_success(clock.t, 0))
    clock.t += 2.0

    def full_disk() -> None:
        raise sqlite3.OperationalError("database or disk is full")

    recorder.persist(full_disk)
    conn = sqlite3.connect(tmp_path / "job.db")
    assert read_segments(conn) == []
    clock.t += 2.0
    recorder.persist(store.commit)
    (segment,) = read_segments(conn)
    conn.close()
    recorder.close()
    store.close()
    assert sum(r.succeeded for r in segment.rows.values()) == 1


def test_the_run_is_dated_by_the_wall_clock_it_is_given(tmp_path: Path) -> None:
    """The run's start and end are dated by the `wall` parameter plus the monotonic time that passed, never by
    reading the system's wall clock inside the recorder."""
    clock = FakeTime()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
    recorder = TimelineRecorder(store.path, now=clock, wall=lambda: 1_700_000_000.0)
    clock.t += 4.0
    recorder(_success(clock.t, 0))
    store.commit()
    recorder.close()
    store.close()
    conn = sqlite3.connect(tmp_path / "job.db")
    started, ended = conn.execute("SELECT started, ended FROM timeline_runs").fetchone()
    conn.close()
    assert (started, ended) == (1_700_000_000.0, 1_700_000_004.0)
