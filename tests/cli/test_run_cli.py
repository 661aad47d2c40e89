"""`sluicegate run` end to end: the real command in a subprocess against the emulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-SECRET-do-not-leak-1234"
MINUTE = "3"


def _env(emu: RunningEmulator) -> dict[str, str]:
    return env_for(emu, KEY)


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", MINUTE, "--quiet", *args]


def _run(
    emu: RunningEmulator, inp: Path, out: Path, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(inp, out, *args), env=_env(emu), capture_output=True, text=True, timeout=timeout)


def _requests_seen(emu: RunningEmulator) -> int:
    return sum(emu.stats()["status"].values())


def test_a_run_writes_every_id_once(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """A clean run: exit 0, one succeeded line per input id, the key nowhere in output, logs or store."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.02)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 120)
    proc = _run(emu, inp, out)
    assert proc.returncode == 0, proc.stderr
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == ids
    assert all(line["result"]["type"] == "succeeded" for line in lines)
    for blob in (proc.stdout, proc.stderr, out.read_text()):
        assert KEY not in blob
    for path in tmp_path.iterdir():
        assert KEY.encode() not in path.read_bytes()
    # A second run resumes a finished job: nothing is sent again.
    before = _requests_seen(emu)
    again = _run(emu, inp, out)
    assert again.returncode == 0, again.stderr
    assert _requests_seen(emu) == before
    assert len(read_results(out)) == 120


def test_bad_lines_become_named_errors_and_the_rest_succeeds(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Not JSON, missing id and bad params each get an errored result; a duplicate id is reported, not output."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = (
        "{not json",
        json.dumps({"params": {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}}),
        json.dumps(
            {
                "custom_id": "req-0001",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "dup"}],
                },
            }
        ),
        json.dumps(
            {
                "custom_id": "bad-params",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": -3,
                    "messages": [{"role": "user", "content": "x"}],
                },
            }
        ),
    )
    ids = write_input(inp, 20, extra_lines=bad)
    proc = _run(emu, inp, out)
    assert proc.returncode == 1, proc.stderr
    lines = read_results(out)
    by_type = Counter(line["result"]["type"] for line in lines)
    assert by_type == {"succeeded": 20, "errored": 3}
    errors = {
        line["result"]["error"]["error"]["line"]: line["result"]["error"]["error"]
        for line in lines
        if line["result"]["type"] == "errored"
    }
    assert set(errors) == {21, 22, 24}
    assert "line 23: duplicate custom_id 'req-0001'" in proc.stderr
    assert "1 line(s) skipped because an earlier line has the same id" in proc.stderr
    assert Counter(line["custom_id"] for line in lines)["req-0001"] == 1
    assert "max_tokens" in (errors[24]["field"] or "")
    assert sorted({line["custom_id"] for line in lines} & set(ids)) == ids


def test_ordered_output_is_in_input_order(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """--ordered writes results in input order despite varying latency."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01, per_token_latency=0.002, jitter=0.8, seed=4)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 60)
    proc = _run(emu, inp, out, "--ordered")
    assert proc.returncode == 0, proc.stderr
    assert [line["custom_id"] for line in read_results(out)] == ids


@pytest.mark.parametrize("kill_after", [5, 40, 90])
def test_kill_9_then_resume_gives_every_id_exactly_once(
    emulator: Callable[..., RunningEmulator], tmp_path: Path, kill_after: int
) -> None:
    """SIGKILL after some results, then resume: every id once, re-sent at most the in-flight cap."""
    emu = emulator(minute=3.0, rpm=1200, first_token_latency=0.1)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 120)
    proc = subprocess.Popen(
        _cmd(inp, out, "--max-concurrency", "8"), env=_env(emu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= kill_after:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    emu.wait_idle()  # the server finished answering the dead client's requests, so its count is final
    sent_first = _requests_seen(emu)
    with sqlite3.connect(tmp_path / "out.jsonl.sluicegate.db") as db:
        committed = db.execute("SELECT count(*) FROM entries WHERE seq IS NOT NULL").fetchone()[0]
    resumed = _run(emu, inp, out)
    assert resumed.returncode == 0, resumed.stderr
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == ids
    resent = _requests_seen(emu) - len(ids)
    # Exactly the uncommitted ones go out again: those in flight at the kill (at most 8 with this cap) plus
    # answers not committed yet. At most 2 recorded answers wait for a commit, but on a loaded machine the loop
    # can fall behind the answers, which then queue in front of it (the engine keeps at most 2 x cap items
    # outstanding): on an idle machine this is at most 8 + 2.
    assert resent == sent_first - committed
    assert 0 <= resent <= 2 * 8 + 2


def test_ctrl_c_drains_then_resume_finishes(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """SIGINT stops admission, lets in-flight requests finish, exits 130 saying how to resume."""
    emu = emulator(minute=6.0, rpm=300, first_token_latency=0.2)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 80)
    proc = subprocess.Popen(_cmd(inp, out), env=_env(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and out.read_bytes().count(b"\n") >= 10):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Resume with" in stderr or "resume with" in stderr
    first = len(read_results(out))
    assert 10 <= first < 80
    resumed = _run(emu, inp, out)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids


def test_max_cost_stops_below_the_cap(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """--max-cost stops admission before the cap; exit 3; unfinished items are not written."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 200)
    proc = _run(emu, inp, out, "--max-cost", "0.002")
    assert proc.returncode == 3, proc.stderr
    lines = read_results(out)
    assert 0 < len(lines) < 200
    spent = 0.0
    for line in lines:
        usage = line["result"]["message"]["usage"]
        spent += (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 5.0) / 1_000_000
    assert spent <= 0.002
    assert "cost cap" in proc.stderr


def test_no_key_and_no_url_runs_against_the_emulator(tmp_path: Path) -> None:
    """Without a key the command says it uses the built-in emulator, and the job completes."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 15)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "1", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert "emulator" in proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids


def test_changed_input_is_refused_until_restart(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """Resuming after the input changed exits 2 and sends nothing; --restart starts over."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 10)
    assert _run(emu, inp, out).returncode == 0
    with inp.open("a") as f:
        f.write(json.dumps({"id": "extra", "prompt": "one more", "model": "claude-haiku-4-5", "max_tokens": 9}) + "\n")
    before = _requests_seen(emu)
    refused = _run(emu, inp, out)
    assert refused.returncode == 2
    assert "--restart" in refused.stderr
    assert _requests_seen(emu) == before
    restarted = _run(emu, inp, out, "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert len(read_results(out)) == 11


def test_retry_failed_resends_only_failed_items(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """Items that failed (an unknown model: 404) are sent again with --retry-failed, and only they."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 10)
    with inp.open("a") as f:
        for i in range(3):
            line = {"id": f"bad-model-{i}", "prompt": "hi", "model": "claude-nope-1", "max_tokens": 9}
            f.write(json.dumps(line) + "\n")
    first = _run(emu, inp, out)
    assert first.returncode == 1
    before = _requests_seen(emu)
    again = _run(emu, inp, out, "--retry-failed")
    assert again.returncode == 1
    assert _requests_seen(emu) - before == 3
    lines = read_results(out)
    assert len(lines) == 13
    assert len({line["custom_id"] for line in lines}) == 13


def test_a_bad_prices_file_is_a_usage_error(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """--prices with a broken file exits 2 before anything is sent, naming the file and the field."""
    emu = emulator(minute=3.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 3)
    prices = tmp_path / "my-prices.json"
    prices.write_text(json.dumps({"models": {"claude-haiku-4-5": {"input": 1, "output": -5}}}))
    proc = _run(emu, inp, out, "--prices", str(prices))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    flat = " ".join(proc.stderr.split())
    assert "my-prices.json" in flat
    assert "models.claude-haiku-4-5.output: a price must be" in flat
    assert not out.exists()
    assert emu.stats()["status"] == {}


def test_prices_file_drives_the_cost_cap(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """--max-cost is enforced at the --prices file's rates (100x the list price here), not the shipped ones."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 100)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-haiku-4-5": {"input": 100, "output": 500}}}))
    # At list prices 100 answers cost about $0.02, well under the cap; at these prices a handful reach it.
    proc = _run(emu, inp, out, "--max-cost", "0.2", "--prices", str(prices))
    assert proc.returncode == 3, proc.stderr
    lines = read_results(out)
    assert 0 < len(lines) < 100
    spent = sum(
        (
            line["result"]["message"]["usage"]["input_tokens"] * 100
            + line["result"]["message"]["usage"]["output_tokens"] * 500
        )
        / 1e6
        for line in lines
    )
    assert spent <= 0.2


def test_answers_without_a_price_are_reported(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """A price table without the run's model: the run succeeds and says the cost of its answers is unknown."""
    emu = emulator(minute=3.0, rpm=2000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, 5)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"acme-1": {"input": 1, "output": 2}}}))
    proc = _run(emu, inp, out, "--prices", str(prices))
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    flat = " ".join(proc.stderr.split())
    assert "Cost unknown for 5 answer(s): no price for 'claude-haiku-4-5'" in flat
