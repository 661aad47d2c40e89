"""`plan` and `estimate` on a table input (Parquet, CSV) read through `--template`, as `run` reads it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sluicegate.cli import main

TEMPLATE = "Summarise ticket {ticket_id}: {body}"
N = 40
MODEL = ("--model", "claude-haiku-4-5", "--max-tokens", "64")


def _rows() -> list[dict[str, str]]:
    return [{"ticket_id": f"T{i:03d}", "body": f"the printer on floor {i} is on fire" * (1 + i % 3)} for i in range(N)]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["ticket_id", "body"])
        writer.writeheader()
        writer.writerows(rows)


def _jsonl_twin(path: Path) -> Path:
    """The same requests as a JSONL file: what the template makes of each row, written out by hand."""
    with path.open("w") as f:
        for row in _rows():
            prompt = f"Summarise ticket {row['ticket_id']}: {row['body']}"
            f.write(json.dumps({"id": row["ticket_id"], "prompt": prompt}) + "\n")
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _table_body(output: str) -> str:
    """The output without its title line, which names the input file."""
    return "\n".join(line for line in output.splitlines() if "requests," not in line)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("command", ["plan", "estimate"])
def test_a_table_plans_exactly_like_the_jsonl_its_template_makes(tmp_path: Path, kind: str, command: str) -> None:
    """With --template/--id-column a Parquet or CSV input is planned row by row: the same requests, tokens,
    costs and durations as the JSONL of the prompts the template fills in."""
    table = tmp_path / f"tickets.{kind}"
    if kind == "parquet":
        pq.write_table(pa.Table.from_pylist(_rows()), table)
    else:
        _write_csv(table, _rows())
    twin = _jsonl_twin(tmp_path / "twin.jsonl")
    common = (*MODEL, "--rpm", "50")
    code, from_table = _invoke(command, str(table), "--template", TEMPLATE, "--id-column", "ticket_id", *common)
    assert code == 0, from_table
    assert f"{N} requests, 0 invalid lines" in from_table
    code, from_jsonl = _invoke(command, str(twin), *common)
    assert code == 0, from_jsonl
    assert _table_body(from_table) == _table_body(from_jsonl)


def test_a_table_without_a_template_is_a_usage_error_that_shows_how(tmp_path: Path) -> None:
    """`plan tickets.parquet` without --template exits 2 and suggests a template from the table's columns."""
    table = tmp_path / "tickets.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), table)
    code, output = _invoke("plan", str(table))
    assert code == 2
    assert "--template 'Summarise: {body}' --id-column ticket_id" in output


def test_a_row_the_template_cannot_fill_is_counted_invalid_by_row(tmp_path: Path) -> None:
    """A row whose templated column is empty is an invalid line of the plan, named by its row, not a crash."""
    rows = _rows()
    rows[4]["body"] = ""
    table = tmp_path / "tickets.csv"
    _write_csv(table, rows)
    code, output = _invoke("estimate", str(table), "--template", TEMPLATE, *MODEL)
    assert code == 0, output
    assert f"{N - 1} requests, 1 invalid lines" in output
    assert "row 5: column 'body' is empty" in output
