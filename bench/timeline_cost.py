"""The run timeline's cost: its share of a job's CPU, and its size in the job store on long jobs.

`python -m bench.timeline_cost [--job-lines 20000] [--items 1000000 10000000]`

1. CPU share. A whole `sluicegate run` job (bench.job_memory's child, in a fresh process: real runner, store,
   writer, engine, timeline) over an in-process transport that answers at once, so the job's CPU per completion is
   as small as it gets and the timeline's share as large as it gets. Beside it, in the same run, the recorder alone
   fed the events such a job emits per item (one admission, one completion with usage and latency, a limiter sample
   four times a second), timed with time.process_time. Share = recorder CPU per item / whole job CPU per item.
2. Size. A synthetic timeline of N items at R items/s written through the recorder into a real job store (fake
   clock, so a 10-million-item job takes minutes, not days): bytes of the timeline tables, and the rows kept.
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sluicegate._events import Event, RequestAdmitted, RequestCompleted
from sluicegate._models import Result, Usage
from sluicegate._stats import EngineStatistics, LimiterStatistics
from sluicegate.jobs import JobStore
from sluicegate.jobs.timeline import TimelineRecorder

_STATS = EngineStatistics(
    limiter=LimiterStatistics(
        in_flight=40,
        concurrency_limit=64,
        waiting=3,
        requests_per_minute=4000.0,
        input_tokens_per_minute=2e6,
        output_tokens_per_minute=4e5,
        binding="requests",
    )
)


def whole_job(lines: int, workdir: Path) -> tuple[float, int]:
    """CPU seconds and results of one real job over an instant in-process transport: bench.job_memory's child, in a
    fresh process."""
    cmd = [sys.executable, "-m", "bench.job_memory", "--child", str(lines), "--workdir", str(workdir), "--mode", "job"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600).stdout
    row = json.loads(out.strip().splitlines()[-1])
    return float(row["cpu"]), int(row["out"])


def events(items: int, rate: float, start: float = 0.0) -> list[Event]:
    """The events the engine emits for `items` items at `rate` items/s: one admission and one completion each."""
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_input_tokens=800)
    message = {"model": "claude-haiku-4-5"}
    out: list[Event] = []
    for i in range(items):
        at = start + (i + 1) / rate
        out.append(
            RequestAdmitted(
                at=at,
                index=i,
                custom_id="x",
                attempt=1,
                input_tokens_estimate=1200,
                output_tokens_reserved=300,
                in_flight=40,
            )
        )
        out.append(
            RequestCompleted(
                at=at,
                result=Result(i, "x", message=message, usage=usage, cost=0.0021, attempts=1, latency=2.5, ttft=0.6),
            )
        )
    return out


def feed(recorder: TimelineRecorder, clock: list[float], batch: list[Event]) -> None:
    """Hand `batch` to the recorder as a run would: the clock follows the events, a persist every 1,000 events."""
    for n, event in enumerate(batch):
        clock[0] = event.at
        recorder(event)
        if n % 1000 == 999:
            recorder.persist(lambda: None)


def recorder_cpu(items: int, workdir: Path) -> float:
    """CPU seconds of the recorder alone for `items` items at 2,000 items/s (persisting as in a run)."""
    store = JobStore.open(workdir / "cpu.db", settings={"bench": "cpu"})
    clock = [0.0]
    recorder = TimelineRecorder(store.path, now=lambda: clock[0])
    recorder.watch(lambda: _STATS)
    batch = events(items, 2000.0)  # built before timing: the engine builds these events for its own sinks anyway
    cpu = time.process_time()
    feed(recorder, clock, batch)
    recorder.close()
    spent = time.process_time() - cpu
    store.close()
    return spent


def timeline_size(items: int, rate: float, workdir: Path) -> tuple[int, int, float]:
    """(bytes of the timeline tables, rows, row width) after `items` items at `rate` items/s."""
    path = workdir / f"size-{items}-{rate:g}.db"
    store = JobStore.open(path, settings={"bench": "size"})
    clock = [0.0]
    recorder = TimelineRecorder(store.path, now=lambda: clock[0])
    recorder.watch(lambda: _STATS)
    chunk = 100_000  # built a chunk at a time: ten million events at once would not fit in memory
    for first in range(0, items, chunk):
        feed(recorder, clock, events(min(chunk, items - first), rate, start=first / rate))
    recorder.close()
    store.close()
    conn = sqlite3.connect(path)
    size = sum(
        conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?", (name,)).fetchone()[0] or 0
        for name in ("timeline", "timeline_runs")
    )
    rows, width = conn.execute("SELECT count(*), max(width) FROM timeline JOIN timeline_runs USING (run)").fetchone()
    conn.close()
    return size, rows, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job-lines", type=int, default=20_000)
    parser.add_argument("--items", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        job_cpu, done = whole_job(args.job_lines, work)
        rec_cpu = recorder_cpu(args.job_lines, work)
        print("## timeline (sluicegate report)\n")
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 2 cores shared with other work; command: "
            f"`python -m bench.timeline_cost --job-lines {args.job_lines} --items {' '.join(map(str, args.items))}`"
            "\n"
        )
        print("| what | items | CPU us per item |")
        print("|---|---|---|")
        print(
            f"| whole `sluicegate run` job (instant transport, timeline on) | {done:,} | {job_cpu / done * 1e6:,.0f} |"
        )
        print(
            f"| timeline recorder alone, same number of items | {args.job_lines:,} | "
            f"{rec_cpu / args.job_lines * 1e6:,.1f} |"
        )
        print(f"\nTimeline share of the job's CPU: {rec_cpu / job_cpu:.2%} (goal: < 1%).\n")
        print("| items | items/s | run length | timeline bytes in the store | rows | row width s |")
        print("|---|---|---|---|---|---|")
        for items in args.items:
            for rate in (50.0, 2000.0):
                size, rows, width = timeline_size(items, rate, work)
                print(f"| {items:,} | {rate:,.0f} | {items / rate / 3600:,.1f} h | {size:,} | {rows:,} | {width:g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
