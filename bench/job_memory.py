"""The job machinery at scale: peak memory and completions per second of a whole `sluicegate run` job.

`python -m bench.job_memory [--lines 100000 1000000]`

Each size runs in a fresh child process: the real runner (streaming reader, SQLite job store, output writer,
engine, progress tracker) over a generated JSONL file, with an in-process transport that answers at once, so
what is measured is sluicegate's own cost: peak RSS (flat from 100k to 1M lines means bounded memory) and
completions per second through the store (goal: the store is never the bottleneck at 2,000 completions/s).
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ANSWER = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "a short summary"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 4},
    }
).encode()


def _child(lines: int, workdir: Path, engine_only: bool) -> None:
    import anyio
    import httpx2
    from rich.console import Console

    from sluicegate.jobs.runner import JobConfig, run_job

    inp = workdir / "in.jsonl"
    with inp.open("w") as f:
        for i in range(lines):
            f.write(json.dumps({"id": f"doc-{i}", "prompt": f"Summarise document number {i}."}) + "\n")
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=_ANSWER, headers={"content-type": "application/json"})
    )
    from sluicegate.jobs.reader import Defaults

    config = JobConfig(
        input_path=inp,
        output_path=workdir / "out.jsonl",
        api_key="bench",
        base_url="http://bench.invalid",
        settings_base="bench",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=16),
        max_concurrency=64,
        transport=transport,
    )
    if engine_only:
        # The same requests through the engine alone: the difference is what the store and writer cost.
        import sluicegate

        async def bare() -> int:
            async with sluicegate.Engine(
                api_key="bench", base_url="http://bench.invalid", transport=transport, max_concurrency=64
            ) as engine:
                done = 0
                async for result in engine.as_completed(
                    {
                        "custom_id": f"doc-{i}",
                        "model": "claude-haiku-4-5",
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"Summarise document number {i}."}],
                    }
                    for i in range(lines)
                ):
                    done += result.ok
                return done

        start = time.monotonic()
        out_lines = anyio.run(bare)
        exit_code = 0
    else:
        start = time.monotonic()
        with open(os.devnull, "w") as devnull:
            outcome = anyio.run(lambda: run_job(config, console=Console(file=devnull), quiet=True))
        exit_code = outcome.exit_code
        out_lines = sum(1 for _ in (workdir / "out.jsonl").open())
    wall = time.monotonic() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = "engine only" if engine_only else "sluicegate run"
    print(
        json.dumps({"lines": lines, "mode": mode, "exit": exit_code, "wall": wall, "rss_mb": rss_mb, "out": out_lines})
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.job_memory", description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, Path(args.workdir), args.engine_only)
        return 0
    rows = []
    for n in args.lines:
        for extra in ([], ["--engine-only"]):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "bench.job_memory", "--child", str(n), "--workdir", tmp, *extra]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=7200).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"## job_memory\n\n{when}; {os.cpu_count()} cores; command: `python -m bench.job_memory --lines "
        f"{' '.join(map(str, args.lines))}`. The whole `sluicegate run` job (reader, SQLite store, writer, engine) "
        "against an in-process transport that answers at once. Goals: peak memory <= 150 MB and flat from 100k to "
        "1M lines; the job store never the bottleneck at 2,000 completions/s.\n"
    )
    print("| lines | what runs | exit code | results | wall s | completions/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lines']:,} | {r['mode']} | {r['exit']} | {r['out']:,} | {r['wall']:.0f} | "
            f"{r['lines'] / r['wall']:,.0f} | {r['rss_mb']:.0f} |"
        )
    print(
        "\nThe whole job against the engine alone, side by side, shows what the job store and the output writer "
        "cost per completion."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
