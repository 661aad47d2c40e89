"""Tables out: the input's rows and columns plus result columns, written from the job store (the truth).

The table is a view: at the end of every run (finished, interrupted or resumed) it is rewritten in full from the
input, streamed again batch by batch, and the store's committed outcomes, into a temporary file renamed over the
output. A killed run leaves the previous view; the resumed run writes the complete one. Memory stays bounded by
one batch of rows. Result columns: `text`, `error`, `status` (succeeded, errored, invalid, pending),
`input_tokens`, `output_tokens`, `cost` (None when the model has no price); a name the input already uses gets a
`result_` prefix.
"""

from __future__ import annotations

import array
import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._models import Result
from ._db import ItemState
from .output_log import OutputLog
from .tables import RowBatch, read_batches

__all__ = ["TABLE_OUTPUT_SUFFIXES", "TableWriter", "is_table_output"]

TABLE_OUTPUT_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
_RESULT_COLUMNS = ("text", "error", "status", "input_tokens", "output_tokens", "cost")
_STATUS = {
    ItemState.PENDING: "pending",
    ItemState.DONE: "succeeded",
    ItemState.FAILED: "errored",
    ItemState.INVALID: "invalid",
}


def is_table_output(path: Path) -> bool:
    return path.suffix.lower() in TABLE_OUTPUT_SUFFIXES


class TableWriter:
    """Stands where the JSONL writer stands in a run; the table is written once, at `close`."""

    def __init__(self, input_path: Path, output_path: Path, log: OutputLog) -> None:
        self._input = input_path
        self._output = output_path
        self._log = log
        self.lines_written = 0
        self._closed = False

    @property
    def path(self) -> Path:
        """The output table."""
        return self._output

    @property
    def closed(self) -> bool:
        """True once `close` ran."""
        return self._closed

    def write_committed(self) -> int:
        return 0  # the store holds every committed result; the table is derived from it at the end

    def rewrite(self) -> None:
        """Nothing to do: `close` always rewrites the whole table."""

    def close(self) -> None:
        """Write the whole table from the input and the store, then rename it over the output."""
        if self._closed:
            return
        self._closed = True
        tmp = self._output.with_name(self._output.name + ".tmp")
        try:
            if self._output.suffix.lower() in (".parquet", ".pq"):
                self.lines_written = _write_parquet(tmp, self._batches())
            else:
                delimiter = "\t" if self._output.suffix.lower() == ".tsv" else ","
                self.lines_written = _write_csv(tmp, self._batches(), delimiter)
            os.replace(tmp, self._output)
        except BaseException:  # a full disk is the runner's to report (it knows what was committed)
            tmp.unlink(missing_ok=True)
            raise

    def _batches(self) -> Iterator[tuple[RowBatch, list[tuple[Any, ...]]]]:
        """Each input batch with one result tuple per row (joined on the row's position)."""
        for batch in read_batches(self._input):
            end = batch.start + len(batch.rows)
            found = {idx: rest for idx, *rest in self._log.outcomes(batch.start, end)}
            yield batch, [_result(found.get(i)) for i in range(batch.start, end)]


def _result(outcome: list[Any] | None) -> tuple[Any, ...]:
    if outcome is None:
        return (None, None, "pending", None, None, None)
    state, inp, out, cost, line = outcome
    status = _STATUS.get(state, "pending")
    if line is None or status == "pending":
        return (None, None, "pending", None, None, None)
    result = json.loads(line)["result"]
    if result["type"] == "succeeded":
        text = Result(index=0, custom_id="", message=result["message"]).text
        return (text, None, status, inp, out, cost)
    error = result.get("error") or {}
    message = (error.get("error") or {}).get("message") or json.dumps(error)
    return (None, message, status, None, None, None)


def _names(columns: list[str]) -> list[str]:
    taken = set(columns)
    return [f"result_{name}" if name in taken else name for name in _RESULT_COLUMNS]


def _write_csv(path: Path, batches: Iterator[tuple[RowBatch, list[tuple[Any, ...]]]], delimiter: str) -> int:
    written = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        columns: list[str] | None = None
        for batch, results in batches:
            for row, result in zip(batch.rows, results, strict=True):
                if columns is None:
                    columns = [c for c in row if c != "__problem__"]
                    writer.writerow([*columns, *_names(columns)])
                values = [_cell(row.get(c)) for c in columns]
                writer.writerow([*values, *("" if v is None else v for v in result)])
                written += 1
    return written


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_parquet(path: Path, batches: Iterator[tuple[RowBatch, list[tuple[Any, ...]]]]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    result_types = [pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(), pa.float64()]
    writer: Any = None
    written = 0
    try:
        for batch, results in batches:
            source = batch.arrow
            if source is None:  # CSV or JSONL rows: columns from the first row, types inferred
                rows = [{k: v for k, v in row.items() if k != "__problem__"} for row in batch.rows]
                source = pa.RecordBatch.from_pylist(rows, schema=None if writer is None else _input_schema(writer))
            names = _names(list(source.schema.names))
            columns = list(zip(*results, strict=True)) if results else [() for _ in names]
            arrays = [_column(pa, list(col), t) for col, t in zip(columns, result_types, strict=True)]
            out = pa.RecordBatch.from_arrays([*source.columns, *arrays], names=[*source.schema.names, *names])
            if writer is None:
                writer = pq.ParquetWriter(path, out.schema)
            writer.write_batch(out)
            written += out.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # an empty input: an empty table with the result columns
        pq.write_table(
            pa.table({n: pa.array([], type=t) for n, t in zip(_RESULT_COLUMNS, result_types, strict=True)}), path
        )
    return written


def _column(pa: Any, values: list[Any], kind: Any) -> Any:
    """An Arrow array of strings, int64 or float64 built from its buffers. Not `pa.array`: for a Python list
    it imports pandas when installed, which alone more than doubles a table job's memory."""
    n = len(values)
    valid = bytearray((n + 7) // 8)
    for k, value in enumerate(values):
        if value is not None:
            valid[k >> 3] |= 1 << (k & 7)
    if kind == pa.string():
        offsets = array.array("i", [0])  # Arrow's int32 offsets: a batch's text stays far below 2 GiB
        assert offsets.itemsize == 4
        chunks: list[bytes] = []
        end = 0
        for value in values:
            if value is not None:
                chunk = str(value).encode()
                chunks.append(chunk)
                end += len(chunk)
            offsets.append(end)
        buffers = [pa.py_buffer(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(chunks))]
    else:
        code = "q" if kind == pa.int64() else "d"
        data = array.array(code, [0 if v is None else v for v in values])
        assert data.itemsize == 8
        buffers = [pa.py_buffer(valid), pa.py_buffer(data)]
    return pa.Array.from_buffers(kind, n, buffers)


def _input_schema(writer: Any) -> Any:
    import pyarrow as pa

    schema = writer.schema.to_arrow_schema() if hasattr(writer.schema, "to_arrow_schema") else writer.schema
    return pa.schema([schema.field(i) for i in range(len(schema) - len(_RESULT_COLUMNS))])
