"""Prompt-cache warm-up end to end: `run` and `batch` on requests sharing a 2,000-token system prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-warmup"
N = 60
SYSTEM = ("refund policy clause " * 400)[:8000]  # 2,000 tokens as the emulator counts them (4 bytes each)


def _write(path: Path) -> None:
    with path.open("w") as f:
        for i in range(N):
            line = {"id": f"t{i}", "system": SYSTEM, "prompt": f"Ticket {i}", "model": "claude-sonnet-4-5"}
            f.write(json.dumps({**line, "max_tokens": 30}) + "\n")


def _cache(out: Path) -> tuple[int, int]:
    """(cache read, cache write) tokens over the output's answers."""
    usages = [line["result"]["message"]["usage"] for line in read_results(out)]
    assert len(usages) == N
    return sum(u["cache_read_input_tokens"] for u in usages), sum(u["cache_creation_input_tokens"] for u in usages)


def _sluicegate(emu: RunningEmulator, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sluicegate", *args]
    env = {**env_for(emu, KEY), "COLUMNS": "200"}  # the summary table on one line per row
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_run_primes_the_shared_prefix_so_the_rest_read_it(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """With warm-up, N-1 of N requests read the shared prompt (>= 95% of its tokens are reads) and the summary shows
    the read share and the money saved; without it (no breakpoints in the input) nothing is cached."""
    emu: Any = emulator(tier=4, minute=6.0, first_token_latency=0.05)
    inp = tmp_path / "in.jsonl"
    _write(inp)
    warm = _sluicegate(emu, "run", str(inp), "-o", str(tmp_path / "warm.jsonl"), "--minute", "6")
    assert warm.returncode == 0, warm.stderr
    read, written = _cache(tmp_path / "warm.jsonl")
    assert written > 0
    assert read >= 0.95 * (read + written)
    assert read == (N - 1) * written  # one write, every other request a read of the same prefix
    assert "cache reads" in warm.stderr
    assert "saved $" in warm.stderr
    cold = _sluicegate(emu, "run", str(inp), "-o", str(tmp_path / "cold.jsonl"), "--minute", "6", "--no-cache-warmup")
    assert cold.returncode == 0, cold.stderr
    assert _cache(tmp_path / "cold.jsonl") == (0, 0)


def test_batch_primes_in_a_one_request_batch_then_the_rest_read(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """The batch route submits one priming request (1 h TTL) alone, then the rest: >= 95% of the shared tokens
    are reads. Without warm-up a lone batch of breakpoints would write N times (the emulator's batch model)."""
    emu: Any = emulator(minute=3.0, batch_seconds=20.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp)
    proc = _sluicegate(emu, "batch", str(inp), "-o", str(out), "--poll-interval", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert "priming the prompt cache: 1 shared prefix" in proc.stderr
    read, written = _cache(out)
    assert read == (N - 1) * written
    lines = read_results(out)
    one_hour = [
        line for line in lines if line["result"]["message"]["usage"]["cache_creation"]["ephemeral_1h_input_tokens"]
    ]
    assert len(one_hour) == 1
    assert int(emu.stats()["endpoints"]["POST /v1/messages/batches"]["200"]) == 2
