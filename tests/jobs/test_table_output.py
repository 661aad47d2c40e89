"""Tables out: result columns built from Arrow buffers read back exactly, without importing pandas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sluicegate.jobs.table_output import _write_parquet
from sluicegate.jobs.tables import RowBatch

RESULTS: list[tuple[Any, ...]] = [
    ("Résumé: ça brûle 🔥", None, "succeeded", 12, 7, 0.000125),
    (None, "row 2: column 'body' is missing", "invalid", None, None, None),
    ("", None, "succeeded", 0, 0, 0.0),
]


def _batches(rows: int) -> Iterator[tuple[RowBatch, list[tuple[Any, ...]]]]:
    source = pa.record_batch({"ticket_id": [f"T{i}" for i in range(rows)], "priority": list(range(rows))})
    yield RowBatch(0, source.to_pylist(), source), RESULTS[:rows]


def test_result_columns_round_trip_nulls_unicode_and_numbers(tmp_path: Path) -> None:
    """Text with multi-byte characters, empty strings, nulls, ints and floats come back as written."""
    out = tmp_path / "out.parquet"
    assert _write_parquet(out, _batches(3)) == 3
    table = pq.read_table(out)
    assert table.schema.names == [
        "ticket_id",
        "priority",
        "text",
        "error",
        "status",
        "input_tokens",
        "output_tokens",
        "cost",
    ]
    assert table.schema.field("input_tokens").type == pa.int64()
    assert table.schema.field("cost").type == pa.float64()
    rows = table.to_pylist()
    assert [tuple(row.values())[2:] for row in rows] == RESULTS
    assert [row["ticket_id"] for row in rows] == ["T0", "T1", "T2"]


def test_writing_a_parquet_table_does_not_import_pandas(tmp_path: Path) -> None:
    """pandas (installed here) stays unloaded while a Parquet table is read and written: importing it alone costs
    a table job about 50 MB."""
    pq.write_table(pa.table({"a": ["x", "y"]}), tmp_path / "in.parquet")
    code = (
        "import sys; from pathlib import Path; "
        "from sluicegate.jobs.table_output import _write_parquet; from sluicegate.jobs.tables import read_batches; "
        f"batch = next(read_batches(Path({str(tmp_path / 'in.parquet')!r}))); "
        f"_write_parquet(Path({str(tmp_path / 'out.parquet')!r}), iter([(batch, "
        "[('t', None, 'succeeded', 1, 2, 0.5), (None, 'e', 'errored', None, None, None)])])); "
        "print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
    assert pq.read_table(tmp_path / "out.parquet").column("text").to_pylist() == ["t", None]
