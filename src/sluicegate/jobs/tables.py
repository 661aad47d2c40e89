"""Tables in: Parquet (streamed by row group), CSV and JSONL with any fields, made into requests by a template.

`sluicegate run tickets.parquet --template 'Summarise this ticket: {body}' --id-column ticket_id` fills the
template from each row's columns; `--system`, `--model` and `--max-tokens` apply as for JSONL. Row numbers are
1-based data rows (a CSV's header is not a row). A row that cannot become a request (a column the template needs
is missing or empty, an id that breaks the custom_id rule) is recorded as an errored result naming the row and the
column, and the run goes on.
"""

from __future__ import annotations

import csv
import json
import math
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from .._models import RequestItem
from .reader import Defaults, InputProblem, Provider, read_requests

__all__ = [
    "TABLE_SUFFIXES",
    "RowBatch",
    "TableSpec",
    "column_names",
    "count_rows",
    "is_table",
    "read_batches",
    "table_requests",
]

TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
_BATCH_ROWS = 4096
_FIELD_RENAMES = {"id": "id_column", "prompt": "template"}
_MAX_WIDTH = 100_000  # the widest padding or precision a template field may ask for


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How rows become requests: the template and the column holding each row's id (None: `row-N`)."""

    template: str
    id_column: str | None = None

    def __post_init__(self) -> None:
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(self.template)]
        except ValueError as exc:  # an unmatched brace
            raise ConfigError(
                f"template {self.template!r:.80}: {exc} (write {{{{ and }}}} for literal braces)"
            ) from exc
        for name, spec, conversion in fields:
            if name is None:
                continue
            plain = name.replace("_", "a").replace(" ", "a").replace("-", "a").isalnum()
            if not name or not plain or conversion not in (None, "r", "s", "a"):
                raise ConfigError(
                    f"template field {{{name}}} must be a column name ({{column}}, optionally {{column:spec}}); "
                    "positional fields, attributes and indexes are not allowed"
                )
            # A width or precision is padding made for every row: {x:>999999999} is a GB per prompt.
            widest = max((int(digits) for digits in re.findall(r"\d+", spec or "")), default=0)
            if widest > _MAX_WIDTH:
                raise ConfigError(
                    f"template field {{{name}:{spec}}} pads to {widest:,} characters; at most {_MAX_WIDTH:,}"
                )

    def settings(self) -> dict[str, str]:
        """What the job store remembers, so that a resume with another template or id column is refused."""
        return {"template": self.template, "id_column": self.id_column or ""}


@dataclass(frozen=True, slots=True)
class RowBatch:
    """Consecutive rows: `start` is the 0-based position of the first; `arrow` is the Parquet batch they came from."""

    start: int
    rows: list[dict[str, Any]]
    arrow: Any = None  # pyarrow.RecordBatch for Parquet input, else None


def is_table(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def _parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet needs pyarrow: pip install 'sluicegate[tables]'") from exc
    # No pre-buffering and no reader threads (below): rows are consumed far slower than they are read, and both
    # only raise peak memory.
    return pq.ParquetFile(path, pre_buffer=False)


def count_rows(path: Path) -> int:
    """Rows in the table, cheaply: Parquet's metadata, or a line count."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return int(_parquet(path).metadata.num_rows)
    with path.open("rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    return max(0, lines - 1) if suffix in (".csv", ".tsv") else lines


def column_names(path: Path) -> list[str]:
    """The table's column names (a JSONL file's first row's fields), for messages."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return list(_parquet(path).schema_arrow.names)
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        if suffix in (".csv", ".tsv"):
            return next(csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","), [])
        first = next(_json_rows(f), {})
    return [c for c in first if c != "__problem__"]


def read_batches(path: Path) -> Iterator[RowBatch]:
    """The table's rows in order, a bounded batch at a time (Parquet by row group, never the whole file)."""
    suffix = path.suffix.lower()
    start = 0
    if suffix in (".parquet", ".pq"):
        parquet = _parquet(path)
        for group in range(parquet.num_row_groups):  # one row group in memory at a time, never the whole file
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, row_groups=[group], use_threads=False):
                yield RowBatch(start, batch.to_pylist(), batch)
                start += batch.num_rows
        return
    # Bytes that are not UTF-8 are kept as lone surrogates (surrogateescape) instead of ending the whole job with a
    # UnicodeDecodeError: `row_request` names the row and column that hold them.
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            yield from _chunks(reader)
        return
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as f:
        yield from _chunks(_json_rows(f))


def _json_rows(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            row = {"__problem__": f"row {number}: not valid JSON ({exc})"}
        yield row if isinstance(row, dict) else {"__problem__": f"row {number}: expected a JSON object"}


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[RowBatch]:
    batch: list[dict[str, Any]] = []
    start = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH_ROWS:
            yield RowBatch(start, batch)
            start += len(batch)
            batch = []
    if batch:
        yield RowBatch(start, batch)


def table_requests(
    path: Path, spec: TableSpec, defaults: Defaults, provider: Provider = "anthropic"
) -> Iterator[RequestItem | InputProblem]:
    """One request (or one problem) per row, in order; index = 0-based row position, line = 1-based row."""
    for batch in read_batches(path):
        for offset, row in enumerate(batch.rows):
            yield row_request(row, batch.start + offset, spec, defaults, provider)


def row_request(
    row: Mapping[str, Any], index: int, spec: TableSpec, defaults: Defaults, provider: Provider
) -> RequestItem | InputProblem:
    """The request a row makes through the template, or the problem naming its row and column."""
    number = index + 1
    if "__problem__" in row:
        return InputProblem(number, index, None, None, str(row["__problem__"]))
    garbled = _not_text(row)
    if garbled is not None:
        known: str | None = f"row-{number}"  # the row's id, unless that is what cannot be read
        if spec.id_column is not None:
            own = row.get(spec.id_column)
            known = None if spec.id_column == garbled or _empty(own) else str(own)
        return InputProblem(
            number, index, known, garbled, f"row {number}: column {garbled!r} holds bytes that are not valid UTF-8"
        )
    custom_id = f"row-{number}"
    if spec.id_column is not None:
        value = row.get(spec.id_column)
        if _empty(value):
            missing = "missing" if spec.id_column not in row else "empty"
            return InputProblem(
                number, index, None, spec.id_column, f"row {number}: id column {spec.id_column!r} is {missing}"
            )
        custom_id = str(value)
    try:
        prompt = fill(spec.template, row)
    except _Missing as exc:
        return InputProblem(number, index, custom_id, exc.column, f"row {number}: {exc}")
    line = json.dumps({"id": custom_id, "prompt": prompt}, ensure_ascii=False)
    parsed = next(read_requests([line], defaults=defaults, provider=provider))
    if isinstance(parsed, InputProblem):
        field = parsed.field or ""
        head, _, rest = field.partition(".")
        renamed = _FIELD_RENAMES.get(head)
        if renamed == "id_column":
            field = spec.id_column or "row number"
        elif renamed is not None:
            field = renamed + ("." + rest if rest else "")
        return replace(parsed, line=number, index=index, field=field or None, message=f"row {number}: {parsed.message}")
    return replace(parsed, index=index, line=number)


class _Missing(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _not_text(row: Mapping[str, Any]) -> str | None:
    """The first column whose name or text is not valid UTF-8 (a lone surrogate, from a byte that was not text)."""
    for key, value in row.items():
        for text in (key, value):
            if isinstance(text, str) and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return str(key).encode("utf-8", "replace").decode()
    return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def fill(template: str, row: Mapping[str, Any]) -> str:
    """The template with each `{column}` (or `{column:spec}`) replaced by the row's value."""
    parts: list[str] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        if name not in row:
            raise _Missing(name, f"the template needs column {name!r}, which the table does not have")
        value = row[name]
        if _empty(value):
            raise _Missing(name, f"column {name!r} is empty")
        if conversion == "r":
            value = repr(value)
        elif conversion in ("s", "a"):
            value = str(value) if conversion == "s" else ascii(value)
        try:
            parts.append(format(value, spec or ""))
        except (TypeError, ValueError) as exc:
            raise _Missing(
                name, f"column {name!r}: cannot format {value!r:.40} with {{{name}:{spec}}} ({exc})"
            ) from exc
    return "".join(parts)
