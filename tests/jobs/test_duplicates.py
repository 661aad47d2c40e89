"""The duplicate-id rule: the first line with an id runs; a later line with the same id is counted and reported,
never output (so the output has exactly one line per id), in both output orders and across resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate.jobs import InputProblem, JobStore, OutputOrder, OutputWriter

from .conftest import SETTINGS, make_item, ok


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("order", ["input", "completion"])
def test_duplicates_have_no_output_line_across_resumes(tmp_path: Path, order: OutputOrder) -> None:
    """Lines a, a(dup), b, a(dup), c: the output is a, b, c, also when written over two runs and reopened."""
    out, db = tmp_path / "out.jsonl", tmp_path / "job.db"
    items = [make_item(i, custom_id=cid) for i, cid in enumerate(["a", "a", "b", "a", "c"])]
    with JobStore.open(db, settings=SETTINGS) as store:
        writer = OutputWriter.open(out, store.output, order)
        for item in items:
            state = store.admit(item)
            if state == "duplicate":
                assert store.admit_problem(InputProblem.duplicate_of(item))
        store.record_result(ok(items[0]))
        store.record_result(ok(items[2]))
        store.commit()
        writer.write_committed()
        writer.close()
    assert _ids(out) == ["a", "b"]
    with JobStore.open(db, settings=SETTINGS) as store:
        writer = OutputWriter.open(out, store.output, order)  # resumes the file as it is: no rewrite, no repeat
        assert writer.lines_written == 2
        for item in items:
            if store.admit(item) == "duplicate":
                assert not store.admit_problem(InputProblem.duplicate_of(item))  # known: told only once
        store.record_result(ok(items[4]))
        store.commit()
        writer.write_committed()
        writer.close()
        counts = store.counts()
    assert _ids(out) == ["a", "b", "c"]
    assert (counts.done, counts.duplicate, counts.invalid) == (3, 2, 0)


def test_a_bad_line_reusing_an_id_is_a_duplicate(tmp_path: Path) -> None:
    """A bad line whose id an earlier line has is a duplicate too: the earlier line's result is the id's only one."""
    item = make_item(0, custom_id="a")
    bad = InputProblem(line=2, index=1, custom_id="a", field="prompt", message="'prompt' must be a non-empty string")
    with JobStore.open(tmp_path / "job.db", settings=SETTINGS) as store:
        store.admit(item)
        assert store.record_problem(bad) == "new"
        store.record_result(ok(item))
        store.commit()
        assert [json.loads(x)["custom_id"] for x in store.output.lines("input")] == ["a"]
        assert store.counts().duplicate == 1
