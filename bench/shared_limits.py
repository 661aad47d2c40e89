"""Four `sluicegate run` processes on one key: with and without `--shared-limits`, one killed, and Redis's cost.

    python -m bench.shared_limits --lines 600          # prints a Markdown section (save as bench/manual/shared.md)

Needs `redis-server` and `redis-benchmark` (the OS package). One emulator with Tier 1 limits (50 RPM, 30k ITPM,
8k OTPM) and a 6-second minute serves all four processes; each process gets a quarter of the input. The
processes learn the window from the headers, as against the real API; `--given-minute` tells them instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator

MINUTE = 6.0
RPM = 50  # Tier 1: requests bind (outputs of ~40 tokens stay under 8k OTPM)
CEILING = RPM / MINUTE  # completions per second the key allows
PROCESSES = 4
KEY = "bench-shared-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    port = _free_port()
    binary = shutil.which("redis-server") or "redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", port
    finally:
        proc.terminate()
        proc.wait(10)


def _write_parts(tmp: Path, lines: int) -> list[Path]:
    parts = []
    for k in range(PROCESSES):
        path = tmp / f"part{k}.jsonl"
        with path.open("w") as f:
            for i in range(k, lines, PROCESSES):
                f.write(json.dumps({"id": f"r{i:06d}", "prompt": f"Summarise ticket {i}: the printer is on fire."}))
                f.write("\n")
        parts.append(path)
    return parts


GIVEN_MINUTE = False  # --given-minute: pass the emulator's minute instead of learning it from the headers
BURST: int | None = None  # --burst: the emulator also enforces the limit over short intervals, as the API may
COUNTED: Literal["end", "admission"] = "end"  # --headers-at-admission: when the emulator counts its headers


def _config(seed: int) -> EmulatorConfig:
    return EmulatorConfig(
        tier=1,
        minute=MINUTE,
        first_token_latency=0.3,
        per_token_latency=0.004,
        jitter=0.3,
        seed=seed,
        burst=BURST,
        headers_counted=COUNTED,
    )


def _command(inp: Path, out: Path, shared: str | None, name: str) -> list[str]:
    cmd = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--model", "claude-sonnet-4-5"]
    cmd += ["--max-tokens", "64", "--quiet", *(["--minute", str(MINUTE)] if GIVEN_MINUTE else [])]
    if shared:
        cmd += ["--shared-limits", shared, "--shared-limits-name", name]
    return cmd


def _env(emu: RunningEmulator) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": emu.base_url}


def _outputs(outs: list[Path], parts: list[Path]) -> dict[str, int]:
    """Lost and duplicated ids across the outputs, against the inputs."""
    want = Counter(json.loads(line)["id"] for p in parts for line in p.read_text().splitlines())
    rows = [json.loads(line) for o in outs if o.exists() for line in o.read_text().splitlines()]
    got = Counter(row["custom_id"] for row in rows)
    return {
        "lost": sum(1 for i in want if got[i] == 0),
        "duplicated": sum(n - 1 for n in got.values() if n > 1),
        "succeeded": sum(1 for row in rows if row["result"]["type"] == "succeeded"),
    }


def _steady_rate(timeline: list[dict[str, int]], start: int | None = None) -> float:
    """Completions per second from `start` (default: the first answer) to the last full second with answers."""
    seconds = [row for row in timeline if row["ok"] and (start is None or row["second"] >= start)]
    if len(seconds) < 3:
        return 0.0
    inner = seconds[1:-1]  # first and last seconds are partial
    span = inner[-1]["second"] - inner[0]["second"] + 1
    return sum(row["ok"] for row in inner) / span


def four_processes(lines: int, shared: str | None) -> dict[str, Any]:
    cfg = _config(1)
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp, run_emulator(cfg) as emu:
        parts = _write_parts(Path(tmp), lines)
        outs = [Path(tmp, f"out{k}.jsonl") for k in range(PROCESSES)]
        started = time.monotonic()
        procs = [
            subprocess.Popen(_command(p, o, shared, "bench-4"), env=_env(emu), stderr=subprocess.PIPE)
            for p, o in zip(parts, outs, strict=True)
        ]
        codes = [p.wait(900) for p in procs]
        wall = time.monotonic() - started
        stats = emu.stats()
        status = {int(k): v for k, v in stats["status"].items()}
        sent = sum(status.values())
        return {
            "shared": bool(shared),
            "exit_codes": codes,
            "wall": wall,
            "ok": status.get(200, 0),
            "429": status.get(429, 0),
            "429_share": status.get(429, 0) / max(1, sent),
            "rate_wall": status.get(200, 0) / wall,
            "rate_steady": _steady_rate(stats["timeline"]),
            **_outputs(outs, parts),
        }


def _pool_size(port: int, name: str) -> int:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "ZCARD", f"sluicegate:{{{name}}}:procs"], capture_output=True, text=True
    )
    return int(out.stdout.strip() or 0)


def _pool_window(port: int, name: str) -> float | None:
    """The requests window the pool paces by now (limit / rate), None before one is known."""
    cli = ["redis-cli", "-p", str(port), "HMGET", f"sluicegate:{{{name}}}:state", "lim:r", "rate:r"]
    out = subprocess.run(cli, capture_output=True, text=True).stdout.split()
    try:
        return round(float(out[0]) / float(out[1]), 2)
    except (IndexError, ValueError, ZeroDivisionError):
        return None


def _pool_state(port: int, name: str) -> str:
    cli = ["redis-cli", "-p", str(port), "HGETALL", f"sluicegate:{{{name}}}:state"]
    return subprocess.run(cli, capture_output=True, text=True).stdout.replace("\n", " ")


def one_killed(lines: int, url: str, port: int, kill_at: float) -> dict[str, Any]:
    cfg = _config(2)
    name = "bench-kill"
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp, run_emulator(cfg) as emu:
        parts = _write_parts(Path(tmp), lines)
        outs = [Path(tmp, f"out{k}.jsonl") for k in range(PROCESSES)]
        started = time.monotonic()
        procs = [
            subprocess.Popen(_command(p, o, url, name), env=_env(emu), stderr=subprocess.DEVNULL)
            for p, o in zip(parts, outs, strict=True)
        ]
        time.sleep(kill_at)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        killed_at = time.monotonic()
        emu_second_at_kill = max((r["second"] for r in emu.stats()["timeline"]), default=0)
        reaped = None
        while time.monotonic() - killed_at < 30:
            if _pool_size(port, name) <= PROCESSES - 1:
                reaped = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        windows = []  # the pool's learnt requests window, every 2 s after the kill until the others finish
        while any(p.poll() is None for p in procs[1:]):
            windows.append(_pool_window(port, name))
            time.sleep(2.0)
        codes = [p.wait(900) for p in procs[1:]]
        others_done = time.monotonic() - started
        stats = emu.stats()
        after = _steady_rate(stats["timeline"], start=emu_second_at_kill + 6)
        resume = subprocess.run(_command(parts[0], outs[0], url, name), env=_env(emu), capture_output=True, timeout=900)
        status = {int(k): v for k, v in emu.stats()["status"].items()}
        return {
            "kill_at": kill_at,
            "reaped_after": reaped,
            "others_exit": codes,
            "others_done": others_done,
            "rate_after_kill": after,
            "windows": windows,
            "timeline": [row["ok"] for row in stats["timeline"]],
            "state": _pool_state(port, name),
            "resume_exit": resume.returncode,
            "ok_total": status.get(200, 0),
            "429": status.get(429, 0),
            **_outputs(outs, parts),
        }


def client_cost(url: str, n: int) -> dict[str, float]:
    """Client CPU and wall time per reserve + settle, sequentially, limits never binding."""
    import anyio

    from sluicegate._models import Usage
    from sluicegate.limits.limiter import Limits
    from sluicegate.limits.shared import SharedLimiter

    async def run() -> dict[str, float]:
        limits = Limits(requests_per_minute=1e9, input_tokens_per_minute=1e12, output_tokens_per_minute=1e12)
        async with SharedLimiter(url, name="bench-cost", limits=limits) as limiter:
            limiter.saw_response()
            usage = Usage(input_tokens=100, output_tokens=50)
            for _ in range(200):  # warm up
                (await limiter.acquire(120, 64)).settle(usage)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                (await limiter.acquire(120, 64)).settle(usage)
            return {
                "cpu_ms": (time.process_time() - cpu) / n * 1000,
                "wall_ms": (time.perf_counter() - wall) / n * 1000,
            }

    return anyio.run(run)


def _benchmark(port: int, n: int, command: list[str]) -> float:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(n), "-c", "50", "-P", "16", "-r", "1000000", "--csv", *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def redis_throughput(port: int, n: int) -> tuple[float, float]:
    """RESERVE calls per second one redis-server answers (redis-benchmark, 50 clients, pipelines of 16), and the
    same for a script that only returns 1 (the machine's baseline for any Lua call)."""
    from sluicegate.limits import _redis_lua as lua

    cli = ["redis-cli", "-p", str(port)]
    sha = subprocess.run([*cli, "SCRIPT", "LOAD", lua.RESERVE], capture_output=True, text=True).stdout.strip()
    keys = lua.pool_keys("sluicegate:{bench-throughput}")
    observe = [lua.OBSERVE.strip()]
    args = ["1", "1", ""] + ["1e12", "60", "", "0", "", "", ""] * 3 + [""] * 7  # smooth: no ramp spacing
    subprocess.run([*cli, "EVAL", *observe, str(len(keys)), *keys, *args], capture_output=True, check=True)
    reserve = _benchmark(port, n, ["EVALSHA", sha, str(len(keys)), *keys, "bench", "__rand_int__", "120", "64", "5"])
    baseline = _benchmark(port, n, ["EVAL", "return 1", "0"])
    return reserve, baseline


def markdown(r: dict[str, Any], args: argparse.Namespace) -> str:
    """The results as the Markdown section RESULTS.md carries."""
    rows = ["| run | exit codes | answered | 429s (share of requests) | lost | duplicated | wall s | "
            "completions/s over the wall | steady completions/s | steady / ceiling |", "|---" * 10 + "|"]  # fmt: skip
    for label, run in (("--shared-limits", r["shared"]), ("no --shared-limits", r["storm"])):
        if run is None:
            continue
        rows.append(
            f"| {label} | {run['exit_codes']} | {run['succeeded']} | {run['429']} ({run['429_share']:.1%}) | "
            f"{run['lost']} | {run['duplicated']} | {run['wall']:.1f} | {run['rate_wall']:.2f} | "
            f"{run['rate_steady']:.2f} | {run['rate_steady'] / CEILING:.2f} |"
        )
    k = r["killed"]
    reserve, baseline = r["throughput"]
    return "\n".join(
        [
            f"Command: `python -m bench.shared_limits --lines {args.lines} --kill-at {args.kill_at:g}"
            f"{' --given-minute' if args.given_minute else ''}{f' --burst {args.burst}' if args.burst else ''}"
            f"{' --headers-at-admission' if args.headers_at_admission else ''}`. "
            f"Four processes, {args.lines} lines in all, Tier 1 emulator (50 RPM, 6 s minute"
            f"{f'; also at most {args.burst} requests per {MINUTE * args.burst / RPM:g} s' if args.burst else ''}"
            f"{'; headers counted at admission' if args.headers_at_admission else ''}"
            "): the key's ceiling "
            f"is {CEILING:.2f} completions/s. Windows: "
            + ("given (`--minute 6`)." if args.given_minute else "learnt from the headers (no `--minute`)."),
            "",
            *rows,
            "",
            f"One killed (`kill -9` at {k['kill_at']:g} s, lease 5 s): its lease was reaped "
            f"{k['reaped_after']:.1f} s after the kill; the other three exited {k['others_exit']} and ran at "
            f"{k['rate_after_kill']:.2f} completions/s after it ({k['rate_after_kill'] / CEILING:.2f} of the "
            f"ceiling); its re-run exited {k['resume_exit']}; outputs: {k['succeeded']} answered, {k['lost']} lost, "
            f"{k['duplicated']} duplicated; {k['ok_total'] - k['succeeded']} answer(s) were sent twice (in flight "
            f"at the kill), {k['429']} 429s.",
            "",
            f"Client cost per reserve + settle (sequential, Redis on this machine): {r['cost']['cpu_ms']:.3f} ms CPU, "
            f"{r['cost']['wall_ms']:.3f} ms wall. One redis-server answered {reserve:,.0f} RESERVE calls/s "
            f"(redis-benchmark, 50 clients, pipelines of 16; a Lua script that only returns 1: {baseline:,.0f}/s).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=600)
    parser.add_argument("--kill-at", type=float, default=25.0)
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--skip-shared", action="store_true", help="only the one-killed run and the costs")
    parser.add_argument("--given-minute", action="store_true", help=f"pass --minute {MINUTE:g} (no window learning)")
    parser.add_argument(
        "--burst", type=int, default=None, help="the emulator also enforces the limit over short intervals (N requests)"
    )
    parser.add_argument(
        "--headers-at-admission",
        action="store_true",
        help="the emulator counts each answer's rate-limit headers at the request's admission, not its end",
    )
    args = parser.parse_args()
    global GIVEN_MINUTE, BURST, COUNTED
    GIVEN_MINUTE, BURST = args.given_minute, args.burst
    COUNTED = "admission" if args.headers_at_admission else "end"
    with redis_server() as (url, port):
        shared = None if args.skip_shared else four_processes(args.lines, url)
        storm = None if args.skip_storm else four_processes(args.lines, None)
        killed = one_killed(args.lines, url, port, args.kill_at)
        cost = client_cost(url, 3000)
        throughput = redis_throughput(port, 200_000)
    result = {"shared": shared, "storm": storm, "killed": killed, "cost": cost, "throughput": throughput}
    print(json.dumps(result), file=sys.stderr)
    print(markdown(result, args))


if __name__ == "__main__":
    main()
