"""`sluicegate batch --max-cost`: the cap is the job's, held at the batch price before each create, across kills."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import assert_finished, env_for, read_results, wait_for_a_recorded_batch

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-budget-key"
CREATE = "POST /v1/messages/batches"
# Every answer uses all of its max_tokens: a request's real cost is its worst cost, $0.01 at the batch price
# (4,000 output tokens of claude-haiku-4-5 at $5/M, halved), plus a few input tokens.
FULL: dict[str, Any] = {"minute": 3.0, "batch_seconds": 20.0, "min_output_tokens": 4000, "max_output_tokens": 4000}
CAP = "0.035"  # room for three such requests, not four


def _write(path: Path, n: int) -> list[str]:
    ids = [f"req-{i:02d}" for i in range(n)]
    params = {"model": "claude-haiku-4-5", "max_tokens": 4000}
    lines = [
        json.dumps({"custom_id": cid, "params": {**params, "messages": [{"role": "user", "content": f"ticket {cid}"}]}})
        for cid in ids
    ]
    path.write_text("\n".join(lines) + "\n")
    return ids


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--poll-interval", "0.1", *args]


def _run(emu: RunningEmulator, inp: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(inp, out, *args), env=env_for(emu, KEY), capture_output=True, text=True, timeout=60)


def _batched(emu: RunningEmulator) -> int:
    return sum(emu.stats()["batch_requests"].values())


def _spent(out: Path) -> float:
    with sqlite3.connect(out.with_name(out.name + ".sluicegate.db")) as db:
        return float(db.execute("SELECT total(cost) FROM entries").fetchone()[0])


def test_batches_past_the_cap_are_not_created_and_what_was_not_sent_is_named(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Three of ten requests fit under the cap: one batch of three, the other seven stay pending and are named,
    exit 3 with the command that raises the cap; re-running with the same cap sends nothing more."""
    emu = emulator(**FULL)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _write(inp, 10)
    first = _run(emu, inp, out, "--max-cost", CAP, "--quiet")
    assert first.returncode == 3, first.stderr
    message = " ".join(first.stderr.split())
    assert "stopped at the cost cap" in message
    assert "7 request(s) not sent" in message
    assert "7 item(s) not finished" in message
    assert "--max-cost '<higher>'" in message or "--max-cost <higher>" in message
    assert (emu.stats()["endpoints"][CREATE]["200"], _batched(emu)) == (1, 3)
    assert sorted(line["custom_id"] for line in read_results(out)) == ids[:3]
    assert 0.03 < _spent(out) <= 0.035
    again = _run(emu, inp, out, "--max-cost", CAP, "--quiet")
    assert again.returncode == 3, again.stderr
    assert _batched(emu) == 3
    assert_finished(_run(emu, inp, out, "--max-cost", "1", "--quiet"), out, ids)
    assert _batched(emu) == 10


def test_room_left_by_cheap_answers_is_used_in_further_passes(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Short answers cost far less than their hold: once a batch ends its unspent hold is room again, so the job
    sends the rest in further batches and ends with everything answered, still within the cap."""
    emu = emulator(minute=3.0, batch_seconds=20.0)  # answers of 8-64 tokens against max_tokens 4000
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _write(inp, 8)
    proc = _run(emu, inp, out, "--max-cost", CAP, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    assert emu.stats()["endpoints"][CREATE]["200"] >= 3  # three at most per pass
    assert _spent(out) <= 0.035


def test_a_kill_keeps_the_running_batches_held_so_the_rerun_cannot_pass_the_cap(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """SIGKILL once a batch is recorded; the re-run counts the batches still running at their held cost, so the
    job never sends more than the three requests the cap allows, and its final spend is within the cap."""
    emu = emulator(**{**FULL, "batch_seconds": 40.0})  # 2 real seconds per batch: the kill lands while they run
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, 10)
    cmd = _cmd(inp, out, "--max-cost", CAP, "--max-batch-requests", "1", "--quiet")
    proc = subprocess.Popen(cmd, env=env_for(emu, KEY), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_a_recorded_batch(proc, out.with_name(out.name + ".sluicegate.db"), poll=0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emu.wait_idle()
    resumed = _run(emu, inp, out, "--max-cost", CAP, "--max-batch-requests", "1")
    assert resumed.returncode == 3, resumed.stderr
    assert "7 request(s) not sent" in " ".join(resumed.stderr.split())
    assert _batched(emu) == 3
    assert len(read_results(out)) == 3
    assert _spent(out) <= 0.035
