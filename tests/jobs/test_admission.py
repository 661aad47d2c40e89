"""Admission (`jobs/admission.py`): an input file read into the job store, what to send yielded, problems recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate.jobs import Defaults, InputProblem, JobStore
from sluicegate.jobs.admission import Admission

from .conftest import SETTINGS

pytestmark = pytest.mark.anyio


def _line(custom_id: str, text: str = "hello") -> str:
    params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
    return json.dumps({"custom_id": custom_id, "params": params})


async def _admit(store: JobStore, path: Path) -> tuple[Admission, list[tuple[str, str]], list[InputProblem]]:
    """Read `path` into `store`: the admission, the (id, state) pairs it yielded, the problems it reported."""
    problems: list[InputProblem] = []
    admission = Admission(store, problems.append)
    sent: list[tuple[str, str]] = [(item.custom_id, state) async for item, state in admission.items(path, Defaults())]
    return admission, sent, problems


async def test_good_lines_are_yielded_in_order_and_bad_ones_reported_once(tmp_path: Path) -> None:
    """New items come out in input order; a bad line and a duplicate id are reported, each exactly once."""
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([_line("a"), "{not json", _line("b"), _line("a", "again")]) + "\n")
    with JobStore.open(tmp_path / "job.db", settings=SETTINGS) as store:
        admission, sent, problems = await _admit(store, path)
        assert sent == [("a", "new"), ("b", "new")]
        assert [(p.line, p.custom_id) for p in problems] == [(2, None), (4, "a")]
        assert admission.changed is None
        # Read again (a resume): the unfinished items are pending, and the known problems are not reported again.
        _, sent_again, problems_again = await _admit(store, path)
        assert sent_again == [("a", "pending"), ("b", "pending")]
        assert problems_again == []


async def test_a_changed_line_stops_reading_and_says_where(tmp_path: Path) -> None:
    """When a stored id comes back with other params, reading stops and `changed` names the line and the remedy."""
    path = tmp_path / "in.jsonl"
    path.write_text(_line("a") + "\n" + _line("b") + "\n")
    with JobStore.open(tmp_path / "job.db", settings=SETTINGS) as store:
        await _admit(store, path)
        path.write_text(_line("a") + "\n" + _line("b", "edited") + "\n" + _line("c") + "\n")
        admission, sent, _ = await _admit(store, path)
    assert sent == [("a", "pending")]  # nothing after the changed line is admitted
    assert admission.changed is not None
    assert admission.changed.startswith("line 2: request 'b' differs")
    assert "--restart" in admission.changed
