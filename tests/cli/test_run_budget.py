"""`--max-cost` is the job's cap: it holds across resumes and `kill -9`s, and the messages give the exact command."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluicegate.cli import main
from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input

pytestmark = pytest.mark.e2e

# Prices that make every answer count: $100 per million input tokens, $1,000 per million output tokens.
PRICES = {"batch_discount": 0.5, "models": {"claude-haiku-4-5": {"input": 100.0, "output": 1000.0}}}
MAX_TOKENS = 40
CAP = 6.0


def _write_input(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"t-{i:04d}", "prompt": f"Summarise ticket {i}"}) + "\n")


def _cmd(inp: Path, out: Path, prices: Path, *extra: str) -> list[str]:
    return [
        "sluicegate", "run", str(inp), "-o", str(out), "--quiet", "--minute", "3",
        "--model", "claude-haiku-4-5", "--max-tokens", str(MAX_TOKENS), "--prices", str(prices), *extra,
    ]  # fmt: skip


def _exec(words: list[str]) -> list[str]:
    """A printed `sluicegate ...` command as this interpreter runs it."""
    assert words[0] == "sluicegate"
    return [sys.executable, "-m", "sluicegate", *words[1:]]


def _server_spend(emu: RunningEmulator) -> float:
    stats = emu.stats()
    return (stats["input_tokens"] * 100.0 + stats["output_tokens"] * 1000.0) / 1e6


def _worst_request() -> float:
    return (30 * 100.0 + MAX_TOKENS * 1000.0) / 1e6  # a generous input estimate plus all of max_tokens


def test_the_cap_holds_across_kills_and_resumes(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """`kill -9`s mid-run, then resumes: what the server served costs at most the cap plus one request."""
    emu = emulator(minute=3.0, rpm=4000, first_token_latency=0.4, min_output_tokens=20, max_output_tokens=40)
    inp, out, prices = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    _write_input(inp, 400)
    cmd = _exec(_cmd(inp, out, prices, "--max-cost", str(CAP)))
    env = env_for(emu, "sk-test")
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        lines = out.read_bytes().count(b"\n") if out.exists() else 0
        # Killed once it has written a few more lines, so each kill lands with requests in flight.
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= lines + 3:
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            # A kill leaves its requests in flight counted at their worst cost, so the cap can run out early.
            assert proc.returncode == 3
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
    assert kills >= 2
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 3, final.stderr
    assert "of the $6.00 cap" in final.stderr
    assert _server_spend(emu) <= CAP + _worst_request()
    ids = Counter(line["custom_id"] for line in read_results(out))
    assert ids
    assert max(ids.values()) == 1
    # Once the cap is spent, another run sends nothing at all.
    sent = sum(emu.stats()["status"].values())
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 3, again.stderr
    assert "raise the cap" in again.stderr
    assert sum(emu.stats()["status"].values()) == sent


def test_the_cap_is_the_jobs_and_the_message_gives_the_command(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Run the same capped command three times: the total stays within the cap; the message's command (with a
    raised cap) resumes verbatim, keeping --model and --max-tokens."""
    emu = emulator(minute=3.0, rpm=4000, first_token_latency=0.01, min_output_tokens=20, max_output_tokens=40)
    inp, out, prices = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    _write_input(inp, 60)
    env = env_for(emu, "sk-test")
    cmd = _exec(_cmd(inp, out, prices, "--max-cost", "0.5"))
    for _ in range(3):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
    assert _server_spend(emu) <= 0.5 + _worst_request()
    message = " ".join(proc.stderr.split())
    assert "raise the cap: sluicegate run" in message
    printed = shlex.split(message.split("raise the cap: ", 1)[1].split(". ", 1)[0])
    assert printed[-2:] == ["--max-cost", "<higher>"]
    assert printed[printed.index("--model") : printed.index("--model") + 2] == ["--model", "claude-haiku-4-5"]
    resumed = subprocess.run(_exec([*printed[:-1], "100"]), env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_results(out)) == 60


def test_a_changed_setting_is_named_with_the_command_that_keeps_it(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """--model changed on resume: exit 2 naming old and new values, no --restart advice, and the printed
    command (with the stored model) resumes verbatim."""
    emu = emulator(minute=3.0, rpm=4000, first_token_latency=0.01)
    inp, out, prices = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    _write_input(inp, 10)
    env = env_for(emu, "sk-test")
    first = subprocess.run(_exec(_cmd(inp, out, prices)), env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    changed = [w if w != "claude-haiku-4-5" else "claude-sonnet-4-5" for w in _cmd(inp, out, prices)]
    refused = subprocess.run(_exec(changed), env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())
    assert "--model was 'claude-haiku-4-5' in the stored job, now 'claude-sonnet-4-5'" in message
    assert "--restart" not in message
    keep = shlex.split(message.split("with its settings, run: ", 1)[1].split(" To start", 1)[0])
    sent = sum(emu.stats()["status"].values())
    resumed = subprocess.run(_exec(keep), env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert sum(emu.stats()["status"].values()) == sent  # a finished job: nothing sent again


@pytest.mark.parametrize("command", ["run", "batch", "serve"])
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_cost_cap_that_is_not_a_positive_number_is_a_usage_error(tmp_path: Path, command: str, value: str) -> None:
    """--max-cost 0, negative or NaN is refused while the options are read (0 and -1 ran and 'stopped' at once)."""
    inp = tmp_path / "in.jsonl"
    write_input(inp, 1)
    args = [] if command == "serve" else [str(inp), "-o", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(main, [command, *args, "--max-cost", value])
    assert result.exit_code == 2, result.output
    assert "the cap must be a positive number of USD" in result.output
    assert not (tmp_path / "out.jsonl").exists()
