"""A batch that would end after the deadline: cancelled in time, its finished part kept, the rest sent online."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.pricing import default_table

from ._jobfiles import env_for, read_results, write_input

pytestmark = pytest.mark.e2e

N = 20
DEADLINE = 8.0  # real seconds


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_late_batch_is_cancelled_and_its_rest_finishes_online_before_the_deadline(
    emulator: Callable[..., RunningEmulator], tmp_path: Path, provider: str
) -> None:
    """The batch would take 30 s; with an 8 s deadline it is cancelled in time, what it answered is kept at the
    batch price, the rest is answered online, the job ends within the deadline, and the emulator's counts show
    every request answered exactly once (nothing paid twice, nothing lost)."""
    # 600 emulated seconds per batch at 3 real seconds a minute: one answer every 1.5 s, 30 s for all.
    emu = emulator(minute=3.0, batch_seconds=600.0, rpm=4000, itpm=2_000_000, otpm=400_000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, N)
    if provider == "openai":
        inp.write_text(inp.read_text().replace('"claude-haiku-4-5"', '"gpt-4o-mini"'))
    env = env_for(emu, "sk-test-deadline")
    env.update({"OPENAI_API_KEY": "sk-test-deadline", "OPENAI_BASE_URL": emu.openai_base_url})
    command = [
        sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--provider", provider,
        "--deadline", f"{DEADLINE:g}s", "--rpm", "4000", "--minute", "3", "--online-latency", "1",
        "--cancel-allowance", "1", "--poll-interval", "0.2",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "deadline: cancelling the batches" in proc.stderr
    wall = float(re.findall(r"wall time ([\d.]+) s", proc.stderr)[-1])
    assert wall <= DEADLINE
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == ids
    assert all(line["result"]["type"] == "succeeded" for line in lines)
    stats = emu.stats()
    in_batch = stats["batch_requests"]["succeeded"]
    canceled = stats["batch_requests"]["canceled"]
    online_route = "POST /v1/messages" if provider == "anthropic" else "POST /v1/chat/completions"
    online = stats["endpoints"][online_route]["200"]
    assert in_batch >= 1  # the batch's finished part is kept
    assert online >= 1  # the rest went online
    assert in_batch + online == N  # every request answered once: nothing paid twice
    assert canceled == online  # exactly the requests the batch never ran went online
    tiers = [
        line["result"]["message"]["usage"].get("service_tier")
        if provider == "anthropic"
        else line["result"]["message"].get("service_tier")
        for line in lines
    ]
    if provider == "anthropic":
        assert tiers.count("batch") == in_batch
        assert tiers.count("standard") == online
    assert f"{online} sent online after the deadline cancel" in proc.stderr
    assert default_table().batch_discount == 0.5


def test_run_route_batch_takes_the_batch_route_with_its_deadline(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """`run --route batch --deadline` writes the same output through the batch API, cancelling in time."""
    emu = emulator(minute=3.0, batch_seconds=600.0, rpm=4000, itpm=2_000_000, otpm=400_000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, N)
    command = [
        sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--route", "batch",
        "--deadline", "10s", "--rpm", "4000", "--minute", "3", "--poll-interval", "0.2", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env_for(emu, "sk-test-route"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    stats = emu.stats()
    assert stats["endpoints"]["POST /v1/messages/batches"]["200"] == 1
    assert stats["batch_requests"]["succeeded"] + stats["endpoints"]["POST /v1/messages"]["200"] == N


def test_plan_prints_every_route_and_auto_s_choice(tmp_path: Path) -> None:
    """`plan` shows online and batch side by side with costs, durations and auto's reason; nothing is sent."""
    inp = tmp_path / "in.jsonl"
    write_input(inp, 40)
    command = [sys.executable, "-m", "sluicegate", "plan", str(inp), "--deadline", "6h", "--rpm", "50"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**env_for_none(), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "online" in proc.stdout
    assert "batch (auto)" in proc.stdout
    assert "auto: batch is the cheapest route that meets the 6.0 h deadline" in " ".join(proc.stdout.split())
    bad = subprocess.run([*command[:6], "soon"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "not a duration" in bad.stderr


def env_for_none() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}


def test_plan_count_tokens_corrects_the_input_estimate(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """`plan --count-tokens 10` counts ten requests with the free endpoint and scales the estimate by what it found;
    without a key or base URL it is a usage error."""
    emu = emulator()
    inp = tmp_path / "in.jsonl"
    write_input(inp, 30)
    command = [sys.executable, "-m", "sluicegate", "plan", str(inp), "--count-tokens", "10"]
    proc = subprocess.run(command, env=env_for(emu, "sk-count"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"corrected by x([\d.]+) from count_tokens on 10 request", proc.stdout)
    assert found is not None
    assert 0.5 < float(found.group(1)) < 1.5
    assert emu.stats()["endpoints"]["POST /v1/messages/count_tokens"]["200"] == 10
    keyless = subprocess.run(command, env=env_for_none(), capture_output=True, text=True, timeout=60)
    assert keyless.returncode == 2
    assert "ANTHROPIC_API_KEY" in keyless.stderr


def test_max_cost_covers_the_batch_and_the_online_rest_after_a_deadline_cancel(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """`batch --max-cost --deadline`: the batch is submitted within the cap at the batch rate, and what the cancel
    sends online gets only what the cap leaves, so the whole job's spend stays within the cap plus one online
    request's worst cost; every id is either answered once or left pending for a higher cap (exit 3)."""
    emu = emulator(minute=3.0, batch_seconds=600.0, rpm=4000, itpm=2_000_000, otpm=400_000)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = write_input(inp, N)
    prices = default_table()
    batch_worst = prices.estimate_cost("claude-haiku-4-5", 20, 40, batch=True)
    online_worst = prices.estimate_cost("claude-haiku-4-5", 20, 40)
    assert batch_worst is not None
    assert online_worst is not None
    cap = N * batch_worst * 1.3
    command = [
        sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--deadline", f"{DEADLINE:g}s",
        "--rpm", "4000", "--minute", "3", "--online-latency", "1", "--cancel-allowance", "1", "--poll-interval",
        "0.2", "--max-cost", repr(cap),
    ]  # fmt: skip
    proc = subprocess.run(command, env=env_for(emu, "sk-test-cap"), capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 3), proc.stderr
    assert "deadline: cancelling the batches" in proc.stderr
    with sqlite3.connect(out.with_name(out.name + ".sluicegate.db")) as db:
        spent = db.execute("SELECT total(cost) FROM entries").fetchone()[0]
    assert spent <= cap + online_worst
    lines = read_results(out)
    stats = emu.stats()
    billed = stats["batch_requests"]["succeeded"] + stats["endpoints"].get("POST /v1/messages", {}).get("200", 0)
    assert billed == len(lines)  # nothing paid twice
    if proc.returncode == 0:
        assert sorted(line["custom_id"] for line in lines) == ids
    else:
        assert "raise the cap" in proc.stderr
