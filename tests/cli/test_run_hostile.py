"""`sluicegate run` on hostile input: the run goes on, every line gets one result, answers received are kept."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parent.parent / "jobs" / "corpus" / "hostile.jsonl"


def test_hostile_lines_are_named_errors_and_the_good_line_succeeds(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """The issue's repro plus the whole hostile corpus: exit 1, one line per id, the good lines succeeded."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_bytes(b'{"id":"a","prompt":"ok"}\n{"id":"c","prompt":"\\ud800"}\n' + CORPUS.read_bytes())
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--quiet"]
    cmd += ["--model", "claude-haiku-4-5", "--max-tokens", "20"]
    proc = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    results = read_results(out)
    by_id = {line["custom_id"]: line["result"] for line in results}
    assert len(by_id) == len(results)  # one line per id
    assert by_id["a"]["type"] == "succeeded"
    assert by_id["ok-emoji"]["type"] == "succeeded"
    assert by_id["c"]["type"] == "errored"
    assert "lone surrogate" in by_id["c"]["error"]["error"]["message"]
    assert by_id["huge-max-tokens"]["type"] == "errored"
    # A re-run sends nothing again: the answers were stored.
    sent = sum(emu.stats()["status"].values())
    again = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert again.returncode == 1, again.stderr
    assert sum(emu.stats()["status"].values()) == sent
    assert read_results(out) == results


@pytest.mark.parametrize("name", ["tickets.txt", "tickets.csv"])
def test_a_csv_file_is_recognised_before_anything_is_sent(tmp_path: Path, name: str) -> None:
    """CSV fed to run, under a .txt or a .csv name: exit 2 with one message saying what to do (--template, or how
    to convert it), never one JSON error per line or a --retry-failed hint; no store, no output."""
    inp, out = tmp_path / name, tmp_path / "out.jsonl"
    inp.write_text("id,prompt\nt-1,Summarise this\nt-2,And this\n")
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--emulate", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 2, proc.stderr
    assert "--template" in proc.stderr
    if name.endswith(".txt"):
        assert "looks like CSV (first line: 'id,prompt')" in proc.stderr
        assert "csv.DictReader" in proc.stderr
    else:
        assert "looks like CSV (first line: 'id,prompt')" in proc.stderr
        assert "--template 'Summarise: {prompt}' --id-column id" in proc.stderr
    assert "not valid JSON" not in proc.stderr
    assert "--retry-failed" not in proc.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [inp]
