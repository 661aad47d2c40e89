"""Tables in: templates filled from columns, bad rows named by row and column, streaming readers for each format."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluicegate._exceptions import ConfigError
from sluicegate._models import RequestItem
from sluicegate.jobs.reader import Defaults, InputProblem
from sluicegate.jobs.tables import TableSpec, count_rows, fill, read_batches, row_request, table_requests

DEFAULTS = Defaults(model="claude-haiku-4-5", max_tokens=100, system="Be brief.")


def test_fill_takes_columns_and_format_specs() -> None:
    """{column} and {column:spec} are replaced by the row's values."""
    assert fill("Ticket {id}: {body} ({price:.2f})", {"id": 7, "body": "hi", "price": 3.14159}) == "Ticket 7: hi (3.14)"


@pytest.mark.parametrize("template", ["{}", "{row.body}", "{row[body]}", "{a!x}"])
def test_templates_only_name_columns(template: str) -> None:
    """Positional fields, attributes and indexes are refused when the spec is made."""
    with pytest.raises(ConfigError, match="must be a column name"):
        TableSpec(template=template)


@pytest.mark.parametrize("template", ["{body:>99999999999}", "{body:.1000001}", "{price:0200000.2f}"])
def test_a_template_cannot_pad_every_prompt_to_gigabytes(template: str) -> None:
    """A width or precision over 100,000 is refused when the spec is made (it was a MemoryError mid-job)."""
    with pytest.raises(ConfigError, match="at most 100,000"):
        TableSpec(template=template)
    assert fill("{body:>20}", {"body": "x"}) == " " * 19 + "x"  # ordinary padding still works


def test_a_row_becomes_a_request_with_the_defaults() -> None:
    """The filled template is the user message; id from the id column; model, max_tokens and system apply."""
    spec = TableSpec(template="Summarise: {body}", id_column="ticket_id")
    item = row_request({"ticket_id": "T-9", "body": "printer on fire"}, 4, spec, DEFAULTS, "anthropic")
    assert isinstance(item, RequestItem)
    assert (item.custom_id, item.index, item.line) == ("T-9", 4, 5)
    assert item.params == {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Summarise: printer on fire"}],
    }


def test_without_an_id_column_the_row_number_is_the_id() -> None:
    """No --id-column: row N's id is row-N (stable while the input does not change)."""
    item = row_request({"body": "x"}, 0, TableSpec(template="{body}"), DEFAULTS, "anthropic")
    assert isinstance(item, RequestItem)
    assert item.custom_id == "row-1"


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"ticket_id": "T1"}, "body", "row 3: the template needs column 'body', which the table does not have"),
        ({"ticket_id": "T1", "body": None}, "body", "row 3: column 'body' is empty"),
        ({"ticket_id": "T1", "body": float("nan")}, "body", "row 3: column 'body' is empty"),
        ({"body": "x"}, "ticket_id", "row 3: id column 'ticket_id' is missing"),
        ({"ticket_id": "", "body": "x"}, "ticket_id", "row 3: id column 'ticket_id' is empty"),
        ({"ticket_id": "a b", "body": "x"}, "ticket_id", "row 3: 'id' must be 1-64 characters"),
    ],
)
def test_bad_rows_name_the_row_and_the_column(row: dict[str, object], field: str, message: str) -> None:
    """A row that cannot become a request is a problem naming its 1-based row and the column at fault."""
    spec = TableSpec(template="Summarise: {body}", id_column="ticket_id")
    problem = row_request(row, 2, spec, DEFAULTS, "anthropic")
    assert isinstance(problem, InputProblem)
    assert (problem.line, problem.index, problem.field) == (3, 2, field)
    assert problem.message.startswith(message)


def test_parquet_is_read_one_bounded_batch_at_a_time(tmp_path: Path) -> None:
    """Row groups of 1,000 rows come back as batches no larger than a row group, in order, with their Arrow data."""
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"n": list(range(5000)), "body": [f"b{i}" for i in range(5000)]}), path, row_group_size=1000
    )
    batches = list(read_batches(path))
    assert [b.start for b in batches] == [0, 1000, 2000, 3000, 4000]
    assert all(len(b.rows) == 1000 and b.arrow is not None for b in batches)
    assert batches[3].rows[5] == {"n": 3005, "body": "b3005"}
    assert count_rows(path) == 5000


def test_csv_rows_keep_their_text_exactly(tmp_path: Path) -> None:
    """CSV values stay strings as written (a leading zero survives); the header is not a row."""
    path = tmp_path / "t.csv"
    path.write_text('id,body\n007,"a, quoted ""one"""\n008,plain\n', encoding="utf-8")
    (batch,) = read_batches(path)
    assert batch.rows == [{"id": "007", "body": 'a, quoted "one"'}, {"id": "008", "body": "plain"}]
    assert count_rows(path) == 2


def test_jsonl_with_any_fields_and_a_broken_line(tmp_path: Path) -> None:
    """Any-field JSONL rows fill the template; a line that is not JSON is a problem naming its row."""
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps({"k": "a", "text": "one"}) + "\n{oops\n" + json.dumps({"k": "c", "text": "three"}) + "\n"
    )
    got = list(table_requests(path, TableSpec(template="Say {text}", id_column="k"), DEFAULTS))
    assert isinstance(got[0], RequestItem)
    assert got[0].params["messages"][0]["content"] == "Say one"
    assert isinstance(got[1], InputProblem)
    assert got[1].line == 2
    assert got[1].message.startswith("row 2: not valid JSON")
    assert isinstance(got[2], RequestItem)
    assert got[2].custom_id == "c"


@pytest.mark.parametrize(
    ("suffix", "content", "column", "custom_id"),
    [
        (".csv", b"id,text\na,fine\nb,bad \xff\xfe bytes\nc,fine too\n", "text", "b"),
        (".tsv", b"id\ttext\na,\xc3\tfine\n", "id", None),
        (".jsonl", b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "bad \xff"}\n', "text", "b"),
    ],
)
def test_bytes_that_are_not_utf8_are_one_rows_problem(
    tmp_path: Path, suffix: str, content: bytes, column: str, custom_id: str | None
) -> None:
    """A row holding bytes that are not UTF-8 is a problem naming its row, column and (if readable) id; the rows
    around it still become requests (it ended the whole job with a UnicodeDecodeError)."""
    path = tmp_path / f"t{suffix}"
    path.write_bytes(content)
    found = list(table_requests(path, TableSpec(template="Say {text}", id_column="id"), DEFAULTS))
    bad = [f for f in found if isinstance(f, InputProblem)]
    assert len(bad) == 1
    assert (bad[0].field, bad[0].custom_id) == (column, custom_id)
    assert f"column {column!r} holds bytes that are not valid UTF-8" in bad[0].message
    assert sum(isinstance(f, RequestItem) for f in found) == len(found) - 1
