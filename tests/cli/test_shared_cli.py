"""`sluicegate run --shared-limits`: processes on one key share one limiter; no Redis at start is exit 2."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from local_servers import free_port
from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results, write_input

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-SECRET-shared-5678"


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet", *args]


def _run_with_no_redis(
    emu: RunningEmulator, tmp_path: Path, n: int, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path, str]:
    """`run` of n requests with `--shared-limits` at a port where no Redis listens: the result, output and URL."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, n)
    url = f"redis://127.0.0.1:{free_port()}/0"
    cmd = _cmd(inp, out, "--shared-limits", url, *args)
    proc = subprocess.run(cmd, env=env_for(emu, KEY), capture_output=True, text=True, timeout=90)
    return proc, out, url


def test_unreachable_redis_at_start_exits_2_before_sending(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """No Redis at the URL: exit 2, a message naming it, and not one request sent."""
    emu = emulator(minute=3.0, rpm=600)
    proc, _, url = _run_with_no_redis(emu, tmp_path, 5)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach the shared-limits Redis at {url}" in proc.stderr
    assert sum(emu.stats()["status"].values()) == 0


def test_two_processes_share_one_key_within_the_429_allowance(
    emulator: Callable[..., RunningEmulator], tmp_path: Path, redis_url: str
) -> None:
    """Two runs on one key, limits learnt from headers and shared: every id answered once, 429s within 1%."""
    # 120 requests per 3-second minute: the server's full bucket holds 120 of the 300 requests, and each process
    # alone would pace itself at the whole rate, so without sharing the rest meets 429s.
    emu = emulator(minute=3.0, rpm=120, first_token_latency=0.05)
    procs = []
    outs = []
    for part in range(2):
        inp, out = tmp_path / f"in{part}.jsonl", tmp_path / f"out{part}.jsonl"
        write_input(inp, 150)
        outs.append(out)
        cmd = _cmd(inp, out, "--shared-limits", redis_url, "--shared-limits-name", tmp_path.name)
        procs.append(subprocess.Popen(cmd, env=env_for(emu, KEY), stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err.decode()
        assert KEY not in err.decode()
    for out in outs:
        ids = [line["custom_id"] for line in read_results(out)]
        assert sorted(ids) == [f"req-{i:04d}" for i in range(150)]
    status = emu.stats()["status"]
    assert status.get("200") == 300  # nothing sent twice
    # The issue allows 1% of requests: a request that went out just before another process's headers pulled the
    # shared level down can meet one under a loaded machine (seen once in 1,400-test runs); unshared it is ~40%.
    assert set(status) <= {"200", "429"}
    assert status.get("429", 0) <= 3
    state = redis.Redis.from_url(redis_url).hgetall(f"sluicegate:{{{tmp_path.name}}}:state")
    assert state[b"lim:r"] == b"120"  # learnt from headers, kept in the shared pool


def test_with_a_fallback_divisor_a_run_without_redis_finishes_locally(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """No Redis, `--shared-limits-fallback 2`: the run goes ahead on half the limits and answers every id once."""
    emu = emulator(minute=3.0, rpm=600)
    proc, out, _ = _run_with_no_redis(emu, tmp_path, 20, "--shared-limits-fallback", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == [f"req-{i:04d}" for i in range(20)]
    assert emu.stats()["status"] == {"200": 20}


def test_a_fallback_divisor_that_is_not_a_number_is_a_usage_error(tmp_path: Path) -> None:
    """`--shared-limits-fallback zero` is refused with exit 2 and says what it expected."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(inp, 1)
    cmd = _cmd(inp, out, "--shared-limits", "redis://127.0.0.1:1/0", "--shared-limits-fallback", "zero")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "whole number of processes" in proc.stderr
