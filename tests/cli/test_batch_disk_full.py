"""`sluicegate batch` on a disk that fills up: one line naming the file and the free space, exit 5, and a resume
that re-attaches to the batches already created and finishes with every id once, none sent twice."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._diskfull import fill_the_disk_then_resume
from ._jobfiles import write_input

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")]


def test_a_full_disk_stops_the_batch_job_with_one_line_and_resume_finishes(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Exit 5 with a one-line message (file, free space, resume command), no traceback; the resume sends nothing
    twice and completes the output."""
    emu = emulator(minute=3.0, batch_seconds=20.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 400)
    cmd = [sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--poll-interval", "0.1", "--quiet"]
    fill_the_disk_then_resume(emu, cmd, "batch", inp, out, ids)
    assert sum(emu.stats()["batch_requests"].values()) == 400  # nothing was sent twice
