"""`sluicegate batch` end to end: the real command in a subprocess against the emulator's Message Batches API."""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.pricing import default_table

from ._jobfiles import (
    assert_batch_cost_and_no_key,
    assert_finished,
    assert_refused_key,
    assert_ten_batches_of_three_ended,
    env_for,
    expire_part_of_a_batch,
    kill_once_a_batch_is_recorded,
    read_results,
    retry_the_expired,
    store_of,
    wait_for_a_recorded_batch,
    write_input,
)

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-SECRET-do-not-leak-5678"
CREATE = "POST /v1/messages/batches"
# 1 emulated minute = 3 real seconds: a batch of `batch_seconds=20` emulated seconds ends after 1 real second.
EMU: dict[str, Any] = {"minute": 3.0, "batch_seconds": 20.0}


def _env(emu: RunningEmulator) -> dict[str, str]:
    return env_for(emu, KEY)


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--poll-interval", "0.1", *args]


def _run(emu: RunningEmulator, inp: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(inp, out, *args), env=_env(emu), capture_output=True, text=True, timeout=60)


def _creates(emu: RunningEmulator) -> int:
    return int(emu.stats()["endpoints"].get(CREATE, {}).get("200", 0))


def _batched(emu: RunningEmulator) -> int:
    """Batch requests that reached an outcome on the emulator (every one, once its batch was read after ending)."""
    return sum(emu.stats()["batch_requests"].values())


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out.with_name(out.name + ".sluicegate.db"))


def test_good_and_bad_lines_each_once_at_the_batch_price(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """One batch for the good lines, named errors for the bad ones and a reported duplicate (nothing sent for
    either), cost at half price, no key."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = ("{not json", json.dumps({"id": "req-0001", "prompt": "dup", "model": "claude-haiku-4-5", "max_tokens": 5}))
    bad_params = {"model": "claude-haiku-4-5", "max_tokens": -3, "messages": [{"role": "user", "content": "x"}]}
    ids = write_input(inp, 12, extra_lines=(*bad, json.dumps({"custom_id": "bad-params", "params": bad_params})))
    proc = _run(emu, inp, out)
    assert proc.returncode == 1, proc.stderr
    lines = read_results(out)
    assert Counter(line["result"]["type"] for line in lines) == {"succeeded": 12, "errored": 2}
    errors = {line["result"]["error"]["error"]["line"]: line for line in lines if line["result"]["type"] == "errored"}
    assert set(errors) == {13, 15}
    assert "line 14: duplicate custom_id 'req-0001'" in proc.stderr  # reported, never a second line for the id
    assert errors[15]["custom_id"] == "bad-params"
    assert sorted(line["custom_id"] for line in lines if line["result"]["type"] == "succeeded") == ids
    assert (_creates(emu), _batched(emu)) == (1, 12)
    expected = 0.0
    for line in lines:
        if line["result"]["type"] == "succeeded":
            usage = line["result"]["message"]["usage"]
            assert usage["service_tier"] == "batch"
            expected += (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 5.0) / 1e6 * 0.5
    assert default_table().batch_discount == 0.5
    assert_batch_cost_and_no_key(proc, out, KEY, expected, tmp_path)
    # A finished job re-run sends nothing and keeps its output.
    again = _run(emu, inp, out, "--quiet")
    assert again.returncode == 1, again.stderr
    assert (_creates(emu), len(read_results(out))) == (1, 14)


@pytest.mark.parametrize(("flag", "value"), [("--max-batch-requests", "10"), ("--max-batch-bytes", "1024")])
def test_the_input_is_split_into_batches_within_the_limits(
    emulator: Callable[..., RunningEmulator], tmp_path: Path, flag: str, value: str
) -> None:
    """A cap on requests or bytes per batch splits the input; every request is in exactly one batch."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 25)
    proc = _run(emu, inp, out, flag, value, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    with _db(out) as db:
        sizes = [row[0] for row in db.execute("SELECT items FROM batches ORDER BY seq")]
        unbatched = db.execute("SELECT count(*) FROM entries WHERE batch IS NULL").fetchone()[0]
    assert sum(sizes) == 25
    assert unbatched == 0
    if flag == "--max-batch-requests":
        assert sizes == [10, 10, 5]
    else:
        assert len(sizes) >= 3
        assert max(sizes) < 25
    assert (_creates(emu), _batched(emu)) == (len(sizes), 25)


def test_kill_after_the_first_batch_then_resume_resubmits_nothing(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """SIGKILL once a batch is recorded; the re-run polls the recorded batches, finds one created but not recorded
    (if the kill hit that window) and submits only the rest: no batch is created twice."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 30)
    cmd = _cmd(inp, out, "--max-batch-requests", "3", "--quiet")  # 10 batches: the kill likely lands among them
    store = store_of(out)
    recorded = kill_once_a_batch_is_recorded(emu, cmd, _env(emu), store)
    created_before = _creates(emu)
    # A batch created but not recorded (the kill landed between the create's answer and its commit) is at most one,
    # and its intent is in the store.
    assert created_before - recorded in (0, 1)
    resumed = _run(emu, inp, out, "--max-batch-requests", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    # The job needed ten batches of 3 and the server made exactly ten: none twice, whatever the kill hit.
    assert _creates(emu) == 10
    assert _batched(emu) == 30
    assert_ten_batches_of_three_ended(store)


def test_ctrl_c_stops_polling_and_the_rerun_reattaches(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """SIGINT while polling exits 130 naming the resume command; the re-run finishes without a new batch."""
    emu = emulator(minute=3.0, batch_seconds=60.0)  # 3 real seconds per batch
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 8)
    proc = subprocess.Popen(_cmd(inp, out), env=_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_a_recorded_batch(proc, out.with_name(out.name + ".sluicegate.db"), poll=0.01)  # now it polls
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "keep running on the server" in stderr
    assert "Resume with: sluicegate batch" in " ".join(stderr.split())
    assert_finished(_run(emu, inp, out, "--quiet"), out, ids)
    assert _creates(emu) == 1


def test_expired_requests_fail_and_retry_failed_resubmits_only_them(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """A batch that expires part-way gives `expired` errors; --retry-failed submits exactly those again."""
    emu = emulator(**EMU, batch_deadline=5.0)  # expires after a quarter of its processing time
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 20)
    run = functools.partial(_run, emu, inp, out)
    expired, succeeded = expire_part_of_a_batch(run, out, ids)
    assert emu.stats()["batch_requests"]["expired"] == len(expired)
    before = _batched(emu)
    retry_the_expired(run, out, ids, succeeded)
    assert _creates(emu) == 2
    assert _batched(emu) - before == len(expired)


def test_a_refused_key_stops_with_a_clear_message(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """A 401 on create stops the job at once (exit 4), names the key variable, never the key; items stay pending."""
    emu = emulator(**EMU, invalid_keys=frozenset({KEY}))
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 5)
    proc = _run(emu, inp, out)
    assert_refused_key(proc, "ANTHROPIC_API_KEY", KEY, out)
    assert "401" in proc.stderr
    assert emu.stats()["endpoints"][CREATE] == {"401": 1}


def test_without_a_key_the_built_in_emulator_runs_it_and_a_rerun_resubmits_its_lost_batches(tmp_path: Path) -> None:
    """No key: the built-in emulator runs the job; after Ctrl-C a new emulator gets the lost batches' items."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 6)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    proc = subprocess.Popen(_cmd(inp, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = out.with_name(out.name + ".sluicegate.db")
    wait_for_a_recorded_batch(proc, store, poll=0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "built-in API emulator" in stderr
    again = subprocess.run(_cmd(inp, out), env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "will be submitted again" in again.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids


def test_a_run_jobs_store_is_not_taken_over_by_batch(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """`batch` on the output of a finished `run` refuses (exit 2) and submits nothing: the store names the mode."""
    emu = emulator(**EMU, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 3)
    ran = subprocess.run(
        [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet"],
        env=_env(emu),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    proc = _run(emu, inp, out)
    assert proc.returncode == 2, proc.stderr
    assert "belongs to a `sluicegate run` job" in proc.stderr
    assert "another output file" in proc.stderr
    assert "--restart" not in proc.stderr  # never the suggested fix: it discards results already paid for
    assert _creates(emu) == 0
