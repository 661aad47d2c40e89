"""`sluicegate run TABLE --template ...`: Parquet and CSV round trips, and kill -9 then resume, end to end."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-SECRET-tables-9012"
RESULT_COLUMNS = ["text", "error", "status", "input_tokens", "output_tokens", "cost"]


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [
        *(sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--minute", "3", "--quiet"),
        *("--model", "claude-haiku-4-5", "--max-tokens", "32", "--template", "Summarise ticket {ticket_id}: {body}"),
        *("--id-column", "ticket_id", *args),
    ]


def _tickets(n: int, bad: frozenset[int] = frozenset()) -> pa.Table:
    return pa.table(
        {
            "ticket_id": [f"T{i:05d}" for i in range(n)],
            "body": [None if i in bad else f"the printer on floor {i} is on fire" for i in range(n)],
            "priority": list(range(n)),
            "score": [i / 4 for i in range(n)],
            "urgent": [i % 2 == 0 for i in range(n)],
            "opened": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
        }
    )


def test_parquet_round_trip_keeps_columns_and_types(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """Every input column comes back with its type and values, plus the result columns; a bad row names its column."""
    emu = emulator(minute=3.0, rpm=3000, first_token_latency=0.02)
    inp, out = tmp_path / "tickets.parquet", tmp_path / "out.parquet"
    table = _tickets(40, bad=frozenset({7}))
    pq.write_table(table, inp, row_group_size=16)
    proc = subprocess.run(_cmd(inp, out), env=env_for(emu, KEY), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one invalid row
    got = pq.read_table(out)
    assert got.schema.names == [*table.schema.names, *RESULT_COLUMNS]
    assert got.select(table.schema.names).equals(table)
    rows = got.to_pylist()
    assert rows[7]["status"] == "invalid"
    assert rows[7]["error"] == "row 8: column 'body' is empty"
    ok = [r for i, r in enumerate(rows) if i != 7]
    assert all(r["status"] == "succeeded" and r["text"] and r["output_tokens"] > 0 and r["cost"] > 0 for r in ok)
    assert KEY not in proc.stderr


def test_csv_round_trip_keeps_text_exactly(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """CSV in, CSV out: the input's cells unchanged (leading zeros, quotes, commas), result columns appended."""
    emu = emulator(minute=3.0, rpm=3000, first_token_latency=0.02)
    inp, out = tmp_path / "tickets.csv", tmp_path / "out.csv"
    with inp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "body", "zip"])
        for i in range(25):
            writer.writerow([f"T{i:05d}", f'says "hi", twice ({i})', f"{i:05d}"])
    proc = subprocess.run(_cmd(inp, out), env=env_for(emu, KEY), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with inp.open(newline="") as f:
        source = list(csv.reader(f))
    with out.open(newline="") as f:
        written = list(csv.reader(f))
    assert written[0] == [*source[0], *RESULT_COLUMNS]
    assert [row[:3] for row in written] == source
    assert all(row[5] == "succeeded" and row[3] for row in written[1:])


def test_kill_9_then_resume_writes_every_row_exactly_once(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """SIGKILL mid-run, then the same command: one output row per input row, all answered, none sent twice
    beyond those in flight or uncommitted at the kill."""
    emu = emulator(minute=3.0, rpm=600, first_token_latency=0.1)
    inp, out = tmp_path / "tickets.parquet", tmp_path / "out.parquet"
    pq.write_table(_tickets(150), inp, row_group_size=50)
    store = tmp_path / "out.parquet.sluicegate.db"
    cmd = _cmd(inp, out, "--max-concurrency", "8")
    with subprocess.Popen(cmd, env=env_for(emu, KEY), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 60
        committed = 0
        while time.monotonic() < deadline and proc.poll() is None and committed < 40:
            time.sleep(0.05)
            if store.exists():
                with sqlite3.connect(store) as db:
                    try:
                        committed = db.execute("SELECT count(*) FROM entries WHERE seq IS NOT NULL").fetchone()[0]
                    except sqlite3.OperationalError:
                        continue  # the store exists but its tables are still being created
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert not out.exists()  # the table is written at the end: a killed run leaves no half table
    emu.wait_idle()  # the server finishes answering the dead client's requests
    sent_first = sum(emu.stats()["status"].values())
    with sqlite3.connect(store) as db:
        committed = db.execute("SELECT count(*) FROM entries WHERE seq IS NOT NULL").fetchone()[0]
    resumed = subprocess.run(cmd, env=env_for(emu, KEY), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = pq.read_table(out).to_pylist()
    assert [r["ticket_id"] for r in rows] == [f"T{i:05d}" for i in range(150)]
    assert all(r["status"] == "succeeded" for r in rows)
    assert sum(emu.stats()["status"].values()) - 150 == sent_first - committed  # only the uncommitted again


def test_the_batch_route_reads_a_table_and_writes_it_back(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """`run --route batch` on Parquet: the rows go through the Message Batches API (no online call), the output
    table keeps every input column plus the results, and a bad row is an error naming its column."""
    emu = emulator(minute=3.0, batch_seconds=1.0)
    inp, out = tmp_path / "tickets.parquet", tmp_path / "out.parquet"
    table = _tickets(12, bad=frozenset({3}))
    pq.write_table(table, inp)
    command = _cmd(inp, out, "--route", "batch", "--poll-interval", "0.1", "--no-cache-warmup")
    proc = subprocess.run(command, env=env_for(emu, KEY), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one invalid row
    got = pq.read_table(out)
    assert got.select(table.schema.names).equals(table)
    status = got.column("status").to_pylist()
    assert status.count("succeeded") == 11
    assert "body" in got.column("error").to_pylist()[3]
    stats = emu.stats()
    assert stats["batch_requests"]["succeeded"] == 11
    assert "POST /v1/messages" not in stats["endpoints"]
