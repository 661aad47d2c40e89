"""Issue 13's figures for `sluicegate run`: the fault matrix, kill -9 and resume, and the cost cap across kills.

    python -m bench.hardening matrix --lines 300      # one run per fault kind, plus a 10 s all-529 window
    python -m bench.hardening kills --lines 1000 --kills 10
    python -m bench.hardening budget --kills 4         # kill -9 repeatedly under --max-cost, then resume to the end

Each prints a Markdown section (save it as bench/manual/<name>.md to keep it in RESULTS.md). The emulator runs in
this process on 127.0.0.1; the command runs as a child process, as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cli_runs import resume, write_lines
from sluicegate.emulator import EmulatorConfig, FaultSpec, RunningEmulator, run_emulator
from sluicegate.emulator.prompt import prompt_tag
from sluicegate.pricing import default_table

KEY = "bench-key"
MODEL = "claude-haiku-4-5"
MINUTE = 6.0
WINDOW = (3.0, 13.0)  # the overload row's all-529 window, in seconds of the emulator's clock
# Probabilities per kind: high enough to hit a few hundred requests many times; a hang holds its request until
# the client's idle timeout (120 s), so it is rare.
KINDS = {
    "overloaded": 0.2,
    "api_error": 0.2,
    "unavailable": 0.2,
    "reset": 0.1,
    "hang": 0.03,
    "stream_error": 0.2,
    "truncate": 0.2,
    "slow": 0.1,
}


def _command(inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--model", MODEL,
        "--max-tokens", "64", "--minute", str(MINUTE), "--quiet", *extra,
    ]  # fmt: skip


def _env(emu: RunningEmulator) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": emu.base_url}


def _emulator(*faults: FaultSpec, **extra: Any) -> Any:
    return run_emulator(
        EmulatorConfig(
            rpm=1200, itpm=2_000_000, otpm=400_000, minute=MINUTE, first_token_latency=0.1, per_token_latency=0.002,
            jitter=0.3, faults=faults, **extra,
        )
    )  # fmt: skip


def _check(inp: Path, out: Path) -> dict[str, int]:
    """lost, duplicated, wrong (an answer carrying another prompt's tag) and failed, from the files alone."""
    tags = {}
    for line in inp.open(encoding="utf-8"):
        row = json.loads(line)
        tags[row["id"]] = prompt_tag({"messages": [{"role": "user", "content": row["prompt"]}]})
    seen: Counter[str] = Counter()
    wrong = failed = 0
    for line in out.open(encoding="utf-8") if out.exists() else ():
        row = json.loads(line)
        seen[row["custom_id"]] += 1
        result = row["result"]
        if result["type"] != "succeeded":
            failed += 1
            continue
        text = "".join(block.get("text", "") for block in result["message"]["content"])
        wrong += not text.startswith(f"[{tags.get(row['custom_id'])}]")
    return {
        "lost": sum(1 for cid in tags if cid not in seen),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "wrong": wrong,
        "failed": failed,
    }


def _snapshot_window(emu: RunningEmulator, found: dict[str, int]) -> None:
    """Requests the server answered (any status) inside WINDOW, read from its counters at both ends."""

    def total() -> int:
        return sum(emu.stats()["status"].values())

    start, end = WINDOW
    time.sleep(max(0.0, start - emu.state.now()))
    before = total()
    time.sleep(max(0.0, end - emu.state.now()))
    found["in_window"] = total() - before


def matrix(lines: int, only: str | None = None) -> list[dict[str, Any]]:
    rows = []
    cases: list[tuple[str, tuple[FaultSpec, ...]]] = [
        (kind, (FaultSpec(kind=kind, probability=p, delay=2.0),))  # type: ignore[arg-type]
        for kind, p in KINDS.items()
    ]
    cases.append(
        (
            f"overloaded window {WINDOW[0]:g}-{WINDOW[1]:g} s",
            (FaultSpec(kind="overloaded", start=WINDOW[0], end=WINDOW[1]),),
        )
    )
    for name, faults in cases:
        if only is not None and name != only:
            continue
        with tempfile.TemporaryDirectory(prefix="bench-hard-") as tmp, _emulator(*faults) as emu:
            inp, out = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
            write_lines(inp, lines)
            window: dict[str, int] = {}
            watcher = None
            if "window" in name:
                watcher = threading.Thread(target=_snapshot_window, args=(emu, window), daemon=True)
                watcher.start()
            started = time.monotonic()
            proc = subprocess.run(_command(inp, out), env=_env(emu), capture_output=True, text=True, timeout=900)
            wall = time.monotonic() - started
            if watcher is not None:
                watcher.join(timeout=30)
            stats = emu.stats()
            rows.append(
                {
                    "fault": name,
                    "exit": proc.returncode,
                    "wall_s": round(wall, 1),
                    "requests": sum(stats["status"].values()),
                    "injected": sum(stats["faults"].values()),
                    **_check(inp, out),
                    **({"in_window": window.get("in_window")} if watcher is not None else {}),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def budget(kills: int, seed: int = 1) -> dict[str, Any]:
    """`run --max-cost` killed with SIGKILL `kills` times at random points, then run to its end: what the server
    billed against the cap, and the most one request could cost."""
    rng = random.Random(seed)
    cap = 0.5
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp, _emulator() as emu:
        inp, out = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        write_lines(inp, 5000)
        cmd = _command(inp, out, "--max-cost", str(cap))
        for _ in range(kills):
            proc = subprocess.Popen(cmd, env=_env(emu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.0, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            emu.wait_idle(timeout=60)
        last = subprocess.run(cmd, env=_env(emu), capture_output=True, text=True, timeout=600)
        stats = emu.stats()
    billed = default_table().estimate_cost(MODEL, stats["input_tokens"], stats["output_tokens"]) or 0.0
    worst = default_table().estimate_cost(MODEL, 20, 64) or 0.0
    return {
        "cap": cap,
        "kills": kills,
        "final_exit": last.returncode,
        "answers_billed": int(stats["status"].get("200", 0)),
        "billed": round(billed, 6),
        "one_request_worst": round(worst, 6),
        "within_cap_plus_one": billed <= cap + worst,
        "stopped_at_the_cap": "stopped at the cost cap" in last.stderr,
    }


def _table(rows: Sequence[dict[str, Any]]) -> str:
    keys = list(rows[0])
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hardening", description=__doc__)
    parser.add_argument("what", choices=("matrix", "kills", "budget"))
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--only", default=None, help="matrix: run this fault kind alone")
    args = parser.parse_args()
    if args.what == "matrix":
        print(_table(matrix(args.lines, args.only)))
    elif args.what == "kills":
        rows = []
        for seed in range(args.kills):
            rows.append(resume(args.lines, seed))
            print(json.dumps(rows[-1]), file=sys.stderr)
        print(_table(rows))
    else:
        print(_table([budget(args.kills)]))


if __name__ == "__main__":
    main()
