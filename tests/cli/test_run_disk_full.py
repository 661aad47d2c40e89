"""A disk that fills up mid-run: one line naming the file and the free space, exit 5, and a resume that finishes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._diskfull import fill_the_disk_then_resume
from ._jobfiles import write_input

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")]


def test_a_full_disk_stops_with_one_line_and_resume_finishes(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Exit 5 with a one-line message (file, free space, resume command), no traceback; the resume completes."""
    emu = emulator(minute=3.0, rpm=4000, first_token_latency=0.01)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 400)
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet"]
    fill_the_disk_then_resume(emu, cmd, "run", inp, out, ids)
