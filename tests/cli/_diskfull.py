"""A disk that fills up mid-command, shared by the `run` and `batch` end-to-end tests.

The full disk is a file-size limit (RLIMIT_FSIZE) on the child process: writes past it fail with EFBIG, as they
fail with ENOSPC on a full disk, and no mount or root is needed."""

from __future__ import annotations

import resource
import signal
import subprocess
from collections import Counter
from pathlib import Path

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results

LIMIT = 96 * 1024


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def fill_the_disk_then_resume(
    emu: RunningEmulator, cmd: list[str], verb: str, inp: Path, out: Path, ids: list[str]
) -> None:
    """Run `cmd` under the size limit: exit 5 with one line (file, free space, resume command), no traceback;
    then run it again without the limit: it completes the output with every id once."""
    full = subprocess.run(
        cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90, preexec_fn=_limit_file_size
    )
    assert full.returncode == 5, full.stderr
    assert "Traceback" not in full.stderr
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("stopped: cannot save to ")
    assert "free on its disk" in message
    assert f"resume with: sluicegate {verb} {inp} -o {out}" in message
    done = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert Counter(line["custom_id"] for line in read_results(out)) == Counter(ids)
