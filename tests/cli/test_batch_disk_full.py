"""`sluicegate batch` on a disk that fills up: one line naming the file and the free space, exit 5, and a resume
that re-attaches to the batches already created and finishes with every id once, none sent twice."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input
from .test_run_disk_full import _limit_file_size

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
    full = subprocess.run(
        cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90, preexec_fn=_limit_file_size
    )
    assert full.returncode == 5, full.stderr
    assert "Traceback" not in full.stderr
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("stopped: cannot save to ")
    assert "free on its disk" in message
    assert f"resume with: sluicegate batch {inp} -o {out}" in message
    done = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert Counter(line["custom_id"] for line in read_results(out)) == Counter(ids)
    assert sum(emu.stats()["batch_requests"].values()) == 400  # nothing was sent twice
