"""Input files, environment and output reading shared by the end-to-end tests of `run` and `batch`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import RunningEmulator


def write_input(path: Path, n: int, *, extra_lines: tuple[str, ...] = ()) -> list[str]:
    """n Message Batches request lines (ids req-0000...), then `extra_lines` verbatim; returns the ids."""
    ids = []
    with path.open("w") as f:
        for i in range(n):
            cid = f"req-{i:04d}"
            ids.append(cid)
            params = {
                "model": "claude-haiku-4-5",
                "max_tokens": 40,
                "messages": [{"role": "user", "content": f"Summarise ticket {i}"}],
            }
            f.write(json.dumps({"custom_id": cid, "params": params}) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return ids


def env_for(emu: RunningEmulator, key: str) -> dict[str, str]:
    """This process's environment pointing the command at the emulator with `key`."""
    env = dict(os.environ)
    env.update({"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": emu.base_url})
    return env


def read_results(out: Path) -> list[dict[str, Any]]:
    """The output's result lines; the file must never end in a partial line."""
    text = out.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def wait_for_a_recorded_batch(proc: subprocess.Popen[Any], store: Path, *, poll: float) -> None:
    """Until the job store records its first batch, the command ends, or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    if db.execute("SELECT count(*) FROM batches").fetchone()[0]:
                        return
            except sqlite3.OperationalError:  # the table is not created yet
                pass
        time.sleep(poll)


def store_of(out: Path) -> Path:
    """The job store kept beside an output."""
    return out.with_name(out.name + ".sluicegate.db")


def kill_once_a_batch_is_recorded(emu: RunningEmulator, cmd: list[str], env: dict[str, str], store: Path) -> int:
    """Start `cmd`, SIGKILL it once its store records a batch, let the server finish what the dead client sent;
    returns how many batches the store recorded (at least one, at most the ten the tests split their 30 into)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_a_recorded_batch(proc, store, poll=0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emu.wait_idle()  # the server finished a create the dead client sent, so its counts are final
    with sqlite3.connect(store) as db:
        recorded = int(db.execute("SELECT count(*) FROM batches").fetchone()[0])
    assert 1 <= recorded <= 10
    return recorded


def assert_ten_batches_of_three_ended(store: Path) -> None:
    """The store holds ten ended batches of three items each and no create left in doubt."""
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*), total(ended), total(items) FROM batches").fetchone() == (10, 10.0, 30.0)
        assert db.execute("SELECT count(*) FROM batch_intents").fetchone() == (0,)


def expired_and_succeeded(lines: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The ids of the result lines that expired and of those that succeeded."""
    kinds = {
        line["custom_id"]: line["result"]["type"]
        if line["result"]["type"] == "succeeded"
        else line["result"]["error"]["error"]["type"]
        for line in lines
    }
    return {c for c, k in kinds.items() if k == "expired"}, {c for c, k in kinds.items() if k == "succeeded"}


Run = Callable[..., "subprocess.CompletedProcess[str]"]


def expire_part_of_a_batch(run: Run, out: Path, ids: list[str]) -> tuple[set[str], set[str]]:
    """A first run whose batch expires part-way: exit 1, some answers kept, the rest `expired`; returns both."""
    first = run("--quiet")
    assert first.returncode == 1, first.stderr
    expired, succeeded = expired_and_succeeded(read_results(out))
    assert expired
    assert succeeded
    assert expired | succeeded == set(ids)
    return expired, succeeded


def retry_the_expired(run: Run, out: Path, ids: list[str], succeeded: set[str]) -> set[str]:
    """`--retry-failed` after `expire_part_of_a_batch`: every id still once, more of them answered; returns those."""
    again = run("--retry-failed", "--quiet")
    assert again.returncode == 1, again.stderr  # part of the retry expires too
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == ids
    now_succeeded = {line["custom_id"] for line in lines if line["result"]["type"] == "succeeded"}
    assert succeeded < now_succeeded
    return now_succeeded


def assert_finished(proc: subprocess.CompletedProcess[str], out: Path, ids: list[str]) -> None:
    """The command succeeded and its output holds exactly `ids` (sorted), each once."""
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids


def assert_refused_key(proc: subprocess.CompletedProcess[str], variable: str, key: str, out: Path) -> None:
    """A refused key stopped the job (exit 4) naming its variable, never the key, and wrote no result."""
    assert proc.returncode == 4, proc.stderr
    assert variable in proc.stderr
    assert key not in proc.stderr + proc.stdout
    assert read_results(out) == []


def assert_batch_cost_and_no_key(
    proc: subprocess.CompletedProcess[str], out: Path, key: str, expected: float, folder: Path
) -> None:
    """The job recorded `expected` USD and said it paid the batch price; the key is in no output nor file."""
    with sqlite3.connect(store_of(out)) as db:
        assert db.execute("SELECT total(cost) FROM entries").fetchone()[0] == pytest.approx(expected)
    assert "at the batch price" in proc.stderr
    for blob in (proc.stdout, proc.stderr):
        assert key not in blob
    for path in folder.iterdir():
        assert key.encode() not in path.read_bytes()
