"""Two paths to one output file are one job: resolved before the store is locked, and a symlink is never replaced;
an output that is the input file itself is refused before it is opened."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input

pytestmark = pytest.mark.e2e


def _run(emu: RunningEmulator, inp: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet", *extra]
    return subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)


def test_a_symlinked_output_is_the_same_job_and_stays_a_symlink(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """-o real/out.jsonl, then -o link.jsonl (a symlink to it) and -o alias/out.jsonl (a symlinked folder):
    nothing is sent twice, and after a full rewrite (--retry-failed) the link is still a link to the same file."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01)
    inp = tmp_path / "in.jsonl"
    write_input(inp, 30)
    real = tmp_path / "real"
    real.mkdir()
    out = real / "out.jsonl"
    (tmp_path / "link.jsonl").symlink_to(out)
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    first = _run(emu, inp, out)
    assert first.returncode == 0, first.stderr
    sent = sum(emu.stats()["status"].values())
    for other in (tmp_path / "link.jsonl", tmp_path / "alias" / "out.jsonl"):
        again = _run(emu, inp, other, "--retry-failed")  # --retry-failed rewrites the whole file
        assert again.returncode == 0, again.stderr
    assert sum(emu.stats()["status"].values()) == sent
    assert (tmp_path / "link.jsonl").is_symlink()
    assert (tmp_path / "link.jsonl").resolve() == out.resolve()
    assert len(read_results(out)) == 30
    assert not (tmp_path / "link.jsonl.sluicegate.db").exists()
    assert json.loads(out.read_text().splitlines()[0])["result"]["type"] == "succeeded"


@pytest.mark.parametrize("command", ["run", "batch"])
@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    emulator: Callable[..., RunningEmulator], tmp_path: Path, command: str, how: str
) -> None:
    """-o naming the input file itself (directly, through a symlink or a hard link) is a usage error before
    anything is opened or sent; the input is byte for byte what it was (it was cut to nothing)."""
    emu = emulator(minute=3.0)
    inp = tmp_path / "in.jsonl"
    write_input(inp, 3)
    before = inp.read_bytes()
    out = inp
    if how == "symlink":
        out = tmp_path / "link.jsonl"
        out.symlink_to(inp)
    elif how == "hard link":
        out = tmp_path / "hard.jsonl"
        out.hardlink_to(inp)
    cmd = [sys.executable, "-m", "sluicegate", command, str(inp), "-o", str(out), "--quiet"]
    proc = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 2, proc.stderr
    assert "is the input file itself" in proc.stderr
    assert inp.read_bytes() == before
    assert not list(tmp_path.glob("*.sluicegate.db"))
    assert sum(emu.stats()["status"].values()) == 0
