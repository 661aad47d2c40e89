"""Tables at scale: peak memory of a whole `sluicegate run TABLE.parquet --template ... -o OUT.parquet` job.

`python -m bench.table_memory [--rows 100000 1000000]`

Each size runs in a fresh child process: the real runner over a generated Parquet file (row groups of 50,000
rows, a few columns of text and numbers), a template, the SQLite job store and the Parquet output written from it,
with an in-process transport that answers at once (bench.job_memory's answer), so what is measured is sluicegate's
own cost. Goal: peak RSS <= 150 MB and flat from 100k to 1M rows. Prints a Markdown section.
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

from bench.job_memory import _ANSWER

_GROUP = 50_000


def _write_input(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("ticket_id", pa.string()), ("body", pa.string()), ("priority", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, _GROUP):
            n = min(_GROUP, rows - start)
            ids = [f"T{i:08d}" for i in range(start, start + n)]
            bodies = [f"Customer {i} reports that the printer on floor {i % 40} is on fire again." for i in range(n)]
            writer.write_table(pa.table({"ticket_id": ids, "body": bodies, "priority": [i % 5 for i in range(n)]}))


def _peak_rss_mb() -> float:
    """This process image's peak RSS. Not getrusage's ru_maxrss: Linux carries that over from before exec, so a
    child forked from a parent holding 160 MB (pyarrow, pandas, the input just written) reported the parent's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def _child(rows: int, workdir: Path) -> None:
    import anyio
    import httpx2
    import pyarrow.parquet as pq

    from sluicegate.jobs.reader import Defaults
    from sluicegate.jobs.runner import JobConfig, run_job
    from sluicegate.jobs.tables import TableSpec

    inp, out = workdir / "tickets.parquet", workdir / "out.parquet"  # the parent wrote the input
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=_ANSWER, headers={"content-type": "application/json"})
    )
    config = JobConfig(
        input_path=inp,
        output_path=out,
        api_key="bench",
        base_url="http://bench.invalid",
        settings_base="bench",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=16),
        max_concurrency=64,
        transport=transport,
        table=TableSpec(template="Summarise this ticket: {body}", id_column="ticket_id"),
    )
    start, cpu_start = time.monotonic(), time.process_time()
    outcome = anyio.run(lambda: run_job(config))
    wall = time.monotonic() - start
    meta = pq.ParquetFile(out).metadata
    print(
        json.dumps(
            {
                "rows": rows,
                "exit": outcome.exit_code,
                "wall": wall,
                "cpu": time.process_time() - cpu_start,
                "rss_mb": _peak_rss_mb(),
                "out": meta.num_rows,
                "columns": meta.num_columns,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table_memory", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, Path(args.workdir))
        return 0
    results = []
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            _write_input(Path(tmp, "tickets.parquet"), n)
            cmd = [sys.executable, "-m", "bench.table_memory", "--child", str(n), "--workdir", tmp]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=7200).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"{when}; {os.cpu_count()} cores, shared with other jobs; command: `python -m bench.table_memory --rows "
        f"{' '.join(map(str, args.rows))}`. A whole table job: Parquet in (row groups of {_GROUP:,}), template, "
        "SQLite job store, Parquet out written from the store; an in-process transport answers at once.\n"
    )
    print("| rows | exit code | output rows | output columns | wall s | rows/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['exit']} | {r['out']:,} | {r['columns']} | {r['wall']:.0f} | "
            f"{r['rows'] / r['wall']:,.0f} | {r['rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
