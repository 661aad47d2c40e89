"""The job machinery at scale: peak memory and completions per second of a whole `sluicegate run` job.

`python -m bench.job_memory [--lines 100000 1000000]`

Each size runs in a fresh child process: the real runner (streaming reader, SQLite job store, output writer,
engine, progress tracker) over a generated JSONL file, with an in-process transport that answers at once, so
what is measured is sluicegate's own cost: peak RSS (flat from 100k to 1M lines means bounded memory) and
completions per second through the store (goal: the store is never the bottleneck at 2,000 completions/s).
Beside it, in the same run: the engine alone on the same requests, and the job layer alone (reader, store and
writer with the runner's commit policy, no engine), whose completions per second on one core is the store's own
ceiling. Every row reports the child's CPU time (all threads) per completion, from its start to its end.
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


_MODES = {"job": "sluicegate run", "engine": "engine only", "store": "job layer alone"}


def _child(lines: int, workdir: Path, mode: str) -> None:
    import anyio
    import httpx2

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
    start, cpu_start = time.monotonic(), time.process_time()
    if mode == "store":
        out_lines = _job_layer_alone(inp, workdir / "out.jsonl")
        exit_code = 0
    elif mode == "engine":
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

        out_lines = anyio.run(bare)
        exit_code = 0
    else:
        outcome = anyio.run(lambda: run_job(config))
        exit_code = outcome.exit_code
        out_lines = sum(1 for _ in (workdir / "out.jsonl").open())
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "lines": lines,
                "mode": _MODES[mode],
                "exit": exit_code,
                "wall": wall,
                "cpu": time.process_time() - cpu_start,
                "rss_mb": usage.ru_maxrss / 1024,
                "out": out_lines,
            }
        )
    )


def _job_layer_alone(inp: Path, out: Path) -> int:
    """Reader, store and writer as the runner drives them, each request answered at once: no engine, no HTTP."""
    from sluicegate._clock import SystemClock
    from sluicegate._models import Result, Usage
    from sluicegate.jobs import JobStore, OutputWriter
    from sluicegate.jobs.durable import DurableJob, store_path_for
    from sluicegate.jobs.reader import Defaults, InputProblem, iter_lines, read_requests
    from sluicegate.jobs.runner import _COMMIT_INTERVAL, _UNSAVED_MAX

    message = json.loads(_ANSWER)
    usage = Usage(input_tokens=12, output_tokens=4)
    store = JobStore.open(store_path_for(out), settings={"bench": "store"}, commit_interval=_COMMIT_INTERVAL)
    job = DurableJob(
        store,
        lambda: OutputWriter.open(out, store.output, "completion"),
        clock=SystemClock(),
        unsaved_max=_UNSAVED_MAX,
    )
    defaults = Defaults(model="claude-haiku-4-5", max_tokens=16)
    with job, inp.open("rb") as f:
        for item in read_requests(iter_lines(f), defaults=defaults):
            assert not isinstance(item, InputProblem)
            store.admit(item)
            job.record(Result(item.index, item.custom_id, message=message, usage=usage, cost=0.0, attempts=1))
    return sum(1 for _ in out.open())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.job_memory", description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=sorted(_MODES), default="job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, Path(args.workdir), args.mode)
        return 0
    rows = []
    for n in args.lines:
        for mode in _MODES:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "bench.job_memory", "--child", str(n), "--workdir", tmp, "--mode", mode]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=7200).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"## job_memory\n\n{when}; {os.cpu_count()} cores; command: `python -m bench.job_memory --lines "
        f"{' '.join(map(str, args.lines))}`. The whole `sluicegate run` job (reader, SQLite store, writer, engine) "
        "against an in-process transport that answers at once. Goals: peak memory <= 150 MB and flat from 100k to "
        "1M lines; the job store never the bottleneck at 2,000 completions/s.\n"
    )
    print("| lines | what runs | exit code | results | wall s | completions/s | CPU us per completion | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['lines']:,} | {r['mode']} | {r['exit']} | {r['out']:,} | {r['wall']:.0f} | "
            f"{r['lines'] / r['wall']:,.0f} | {r['cpu'] / r['lines'] * 1e6:,.0f} | {r['rss_mb']:.0f} |"
        )
    print(
        "\nAll rows of a size ran one after another in one invocation. *job layer alone* is the reader, the job "
        "store and the output writer driven as the runner drives them (same commit policy), with every request "
        "answered at once and no engine: its completions/s is what the store sustains on one core."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
