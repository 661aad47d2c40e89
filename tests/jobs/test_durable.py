"""DurableJob, the frame run and batch work in: the last save comes before the work's error, a lull is saved on
the clock, and a full disk stops the work instead of crashing it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import anyio
import pytest

from sluicegate.jobs import JobStore, OutputWriter
from sluicegate.jobs.durable import DurableJob, OutputFile
from sluicegate.testing import FakeClock

from .conftest import SETTINGS, make_item, ok


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def test_the_work_error_comes_out_after_the_last_save(tmp_path: Path) -> None:
    """An error of the work is raised bare (not as a task group's group), and every result before it is written."""
    clock = FakeClock()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS, commit_interval=3600.0, clock=clock.now)
    out = tmp_path / "out.jsonl"
    job = DurableJob(store, lambda: OutputWriter.open(out, store.output, "completion"), clock=clock)

    async def main() -> None:
        with job:
            async with job.running():
                for i in range(3):
                    store.admit(make_item(i))
                    job.record(ok(make_item(i)))
                assert out.read_text() == ""  # inside the commit window: nothing saved yet
                raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        clock.run(main)
    assert _ids(out) == ["id-0", "id-1", "id-2"]


def test_a_result_before_a_lull_is_saved_on_the_next_tick(tmp_path: Path) -> None:
    """With a commit interval, the answer before a long wait is written after one tick, not after the wait."""
    clock = FakeClock()
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS, commit_interval=0.01, clock=clock.now)
    out = tmp_path / "out.jsonl"
    job = DurableJob(
        store, lambda: OutputWriter.open(out, store.output, "completion"), clock=clock, commit_interval=0.01
    )
    seen: list[tuple[float, list[str]]] = []

    async def main() -> None:
        with job:
            async with job.running():
                store.admit(make_item(0))
                job.record(ok(make_item(0)))
                await clock.sleep(0.015)
                seen.append((clock.now(), _ids(out)))
                await clock.sleep(0.1)

    clock.run(main)
    assert seen == [(0.015, ["id-0"])]


class _FullDisk:
    """An output whose writes fail as on a full disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = False

    def write_committed(self) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    def rewrite(self) -> None:
        raise AssertionError("not asked for")

    def close(self) -> None:
        self.closed = True


def test_a_full_disk_stops_the_work_and_says_where(tmp_path: Path) -> None:
    """A save that finds the disk full cancels the work; the block ends normally with `failed` naming the file."""
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS)
    output = _FullDisk(tmp_path / "out.jsonl")
    opened: OutputFile = output
    clock = FakeClock()
    job = DurableJob(store, lambda: opened, clock=clock)
    reached_the_end = False

    async def main() -> None:
        nonlocal reached_the_end
        with job:
            async with job.running():
                store.admit(make_item(0))
                job.record(ok(make_item(0)))
                job.save(now=True)
                await anyio.sleep_forever()
            reached_the_end = True

    clock.run(main)
    assert reached_the_end
    assert job.failed is not None
    assert job.failed.path == output.path
    assert output.closed
