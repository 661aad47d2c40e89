"""The memory and resume scenarios: they drive the `sluicegate run` command in a child process."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator

API_KEY = "bench-key"


def run_available() -> bool:
    """Whether this build has the `sluicegate run` command."""
    return importlib.util.find_spec("sluicegate.cli.run") is not None


def write_lines(path: Path, n: int) -> None:
    """`n` shorthand input lines, written in chunks so the generator itself stays small."""
    with path.open("w", encoding="utf-8") as fh:
        chunk: list[str] = []
        for i in range(n):
            chunk.append(json.dumps({"id": f"r{i}", "prompt": f"Summarize item {i}: the quarter went well."}) + "\n")
            if len(chunk) >= 10_000:
                fh.write("".join(chunk))
                chunk.clear()
        fh.write("".join(chunk))


def _command(inp: Path, out: Path, emu: RunningEmulator, limits: tuple[int, int, int]) -> list[str]:
    rpm, itpm, otpm = limits
    return [
        str(Path(sys.executable).with_name("sluicegate")),
        "run",
        str(inp),
        "-o",
        str(out),
        "--model",
        "claude-haiku-4-5",
        "--max-tokens",
        "64",
        "--base-url",
        emu.base_url,
        "--rpm",
        str(rpm),
        "--itpm",
        str(itpm),
        "--otpm",
        str(otpm),
        "--quiet",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": API_KEY}


def memory(lines: int, seconds: float) -> dict[str, Any]:
    """Peak RSS of `sluicegate run` over `seconds` on an input of `lines` lines at a tight rate limit."""
    import psutil

    # Real time here (minute=60): the command's --rpm and the server's headers must describe the same minute.
    cfg = EmulatorConfig(rpm=6_000, itpm=10_000_000, otpm=10_000_000, minute=60.0, first_token_latency=0.05)
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp, run_emulator(cfg) as emu:
        inp, out = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        write_lines(inp, lines)
        proc = subprocess.Popen(
            _command(inp, out, emu, (6_000, 10_000_000, 10_000_000)),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peak = 0
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        handle = psutil.Process(proc.pid)
        while time.monotonic() - started < seconds and proc.poll() is None:
            try:
                rss = handle.memory_info().rss
            except psutil.Error:
                break
            peak = max(peak, rss)
            samples.append((time.monotonic() - started, rss))
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        done = sum(1 for _ in out.open(encoding="utf-8")) if out.exists() else 0
        err = proc.stderr.read().decode(errors="replace")[-300:] if proc.stderr else ""
    return {"lines": lines, "peak_mb": peak / 2**20, "completed": done, "exit": proc.returncode, "stderr": err}


def resume(n: int, seed: int) -> dict[str, Any]:
    """kill -9 `sluicegate run` at a random point, resume it, and count re-sent requests vs in flight at the kill."""
    rng = random.Random(seed)
    cfg = EmulatorConfig(rpm=12_000, itpm=20_000_000, otpm=10_000_000, minute=60.0, first_token_latency=0.3, jitter=0.8)
    limits = (12_000, 20_000_000, 10_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp, run_emulator(cfg) as emu:
        inp, out = Path(tmp, "in.jsonl"), Path(tmp, "out.jsonl")
        write_lines(inp, n)
        proc = subprocess.Popen(_command(inp, out, emu, limits), env=_env(), stdout=subprocess.DEVNULL)
        kill_at = rng.uniform(0.3, 0.7) * n / 200  # the ceiling is 200 requests per second
        time.sleep(kill_at)
        in_flight = int(emu.stats()["in_flight"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        lines_before = sum(1 for _ in out.open(encoding="utf-8")) if out.exists() else 0
        for _ in range(300):  # let the server finish what the dead client had sent (bounded: 30 s)
            if int(emu.stats()["in_flight"]) == 0:
                break
            time.sleep(0.1)
        answered_before = int(emu.stats()["status"].get("200", 0))
        second = subprocess.run(
            _command(inp, out, emu, limits),
            env=_env(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        ids = [json.loads(line)["custom_id"] for line in out.open(encoding="utf-8")] if out.exists() else []
        ok_answers = int(emu.stats()["status"].get("200", 0))
    return {
        "lines": n,
        "killed_after_s": round(kill_at, 2),
        "output_lines_before_resume": lines_before,
        "in_flight_at_kill": in_flight,
        "sent_not_written": answered_before - lines_before,
        "re_sent": ok_answers - n,
        "unique_ids": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "resume_exit": second.returncode,
    }


def cli_sections(chosen: Sequence[str], *, quick: bool, repeats: int = 1) -> list[str]:
    """RESULTS.md sections for the memory and resume scenarios that were asked for."""
    if not chosen:
        return []
    lines: list[str] = []
    if not run_available():
        for name in chosen:
            lines += [f"## {name}", "", "Not run: this build has no `sluicegate run` command yet.", ""]
        return lines
    if "memory" in chosen:
        seconds = 15.0 if quick else 45.0
        print(f"bench: memory ({seconds:.0f} s per size)", flush=True)
        rows = [memory(n, seconds) for n in (100_000, 1_000_000)]
        lines += [
            "## memory",
            "",
            f"Peak RSS of `sluicegate run` over its first {seconds:.0f} s at 6,000 requests per real minute "
            "(a tight limit: the input cannot be finished, so the question is whether memory grows with it).",
            "",
            "| input lines | peak RSS MB | completed in the window | exit code |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['lines']:,} | {r['peak_mb']:.0f} | {r['completed']:,} | {r['exit']} |" for r in rows]
        lines.append("")
    if "resume" in chosen:
        print(f"bench: resume (x {repeats})", flush=True)
        rows = [resume(1_000 if quick else 4_000, seed=seed) for seed in range(1, repeats + 1)]
        lines += [
            "## resume",
            "",
            f"`sluicegate run` killed with SIGKILL at a random point, then the same command run again; {repeats} "
            "run(s), one row each.",
            "",
            "*in flight at kill (server)*: requests the server was working on a moment before the kill. The client's",
            "own in-flight count is larger: it also holds answers the server has finished but the client has not",
            "read or committed yet (bytes in transit, answers queued behind a busy event loop, at most 2 awaiting a",
            "commit), and it may send a few more between that moment and the kill. *sent, not written*: requests",
            "the server answered for the killed run minus the lines that run wrote, i.e. the client's in-flight",
            "count at the kill. *re-sent*: answers the server gave across both runs minus the number of lines.",
            "The guarantee is re-sent == sent, not written: nothing committed is sent again, nothing is lost.",
            "",
            "| lines | killed after s | in flight at kill (server) | sent, not written | re-sent | ids in output "
            "| duplicates | resume exit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['lines']} | {r['killed_after_s']} | {r['in_flight_at_kill']} | {r['sent_not_written']} | "
            f"{r['re_sent']} | {r['unique_ids']} | {r['duplicates']} | {r['resume_exit']} |"
            for r in rows
        ]
        lines.append("")
    return lines
