"""A disk that fills up mid-run: one line naming the file and the free space, exit 5, and a resume that finishes.

The full disk is a file-size limit (RLIMIT_FSIZE) on the child process: writes past it fail with EFBIG, as they
fail with ENOSPC on a full disk, and no mount or root is needed."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")]

LIMIT = 96 * 1024


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_a_full_disk_stops_with_one_line_and_resume_finishes(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Exit 5 with a one-line message (file, free space, resume command), no traceback; the resume completes."""
    emu = emulator(minute=3.0, rpm=4000, first_token_latency=0.01)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 400)
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet"]
    full = subprocess.run(
        cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90, preexec_fn=_limit_file_size
    )
    assert full.returncode == 5, full.stderr
    assert "Traceback" not in full.stderr
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("stopped: cannot save to ")
    assert "free on its disk" in message
    assert f"resume with: sluicegate run {inp} -o {out}" in message
    done = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert Counter(line["custom_id"] for line in read_results(out)) == Counter(ids)
