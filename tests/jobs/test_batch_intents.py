"""Create intents: a batch created but never recorded (a crash in between) is found on resume, not paid twice."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from sluicegate.jobs._view import JobView
from sluicegate.jobs.batch_api import BatchStatus
from sluicegate.jobs.batch_ledger import BatchIntent
from sluicegate.jobs.batch_runner import BatchJobConfig, run_batch_job
from sluicegate.jobs.batch_service import CLOCK_MARGIN, intent_candidates
from sluicegate.jobs.reader import Defaults
from sluicegate.retry import RetryPolicy

from .conftest import batch_message

FAST = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)
KEY = "sk-ant-test-mock-key"
T0 = 1_800_000_000.0  # the job's wall clock: every intent is dated this
IDS = [f"doc-{i}" for i in range(3)]


@dataclass
class FakeApi:
    """A Message Batches API whose batches end at once; `lose_create` makes the next create's answer get lost after
    (or before) the server made the batch."""

    batches: dict[str, tuple[float, list[str]]] = field(default_factory=dict)  # id -> (created_at, custom_ids)
    creates: int = 0
    lose_create: str | None = None  # "after": the batch exists, the answer is lost; "before": no batch

    def add(self, batch_id: str, created_at: float, custom_ids: list[str]) -> None:
        self.batches[batch_id] = (created_at, custom_ids)

    def _object(self, batch_id: str) -> dict[str, Any]:
        created_at, ids = self.batches[batch_id]
        stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {"processing": 0, "succeeded": len(ids), "errored": 0, "canceled": 0, "expired": 0},
            "created_at": stamp,
            "results_url": f"http://api.test/v1/messages/batches/{batch_id}/results",
        }

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST":
            if self.lose_create == "before":
                self.lose_create = None
                raise httpx2.ConnectError("connection refused")
            self.creates += 1
            batch_id = f"msgbatch_new{self.creates}"
            self.add(batch_id, T0 + 0.5, [r["custom_id"] for r in json.loads(request.content)["requests"]])
            if self.lose_create == "after":
                self.lose_create = None
                raise httpx2.ReadTimeout("no answer")
            return _json(self._object(batch_id))
        if path == "/v1/messages/batches":
            newest = sorted(self.batches, key=lambda b: self.batches[b][0], reverse=True)
            after = request.url.params.get("after_id")
            if after is not None:
                newest = newest[newest.index(after) + 1 :]
            limit = int(request.url.params.get("limit", "20"))
            page = newest[:limit]
            return _json(
                {
                    "data": [self._object(b) for b in page],
                    "has_more": len(newest) > limit,
                    "first_id": page[0] if page else None,
                    "last_id": page[-1] if page else None,
                }
            )
        batch_id = path.split("/")[4]
        if path.endswith("/results"):
            lines = [
                {"custom_id": cid, "result": {"type": "succeeded", "message": batch_message(cid)}}
                for cid in self.batches[batch_id][1]
            ]
            return httpx2.Response(200, content="".join(json.dumps(line) + "\n" for line in lines).encode())
        return _json(self._object(batch_id))


def _json(body: Any) -> httpx2.Response:
    return httpx2.Response(200, content=json.dumps(body).encode())


def _job(tmp_path: Path, api: FakeApi) -> tuple[BatchJobConfig, Path]:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": cid, "prompt": f"p {cid}"}) + "\n" for cid in IDS))
    config = BatchJobConfig(
        input_path=inp,
        output_path=out,
        api_key=KEY,
        base_url="http://api.test",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=16),
        poll_interval=0.0,
        retry=FAST,
        transport=httpx2.MockTransport(api.handle),
        clock=lambda: T0,
    )
    return config, out


def _run(config: BatchJobConfig) -> tuple[int, str]:
    text = io.StringIO()
    outcome = anyio.run(lambda: run_batch_job(config, view=JobView(say=lambda line: print(line, file=text))))
    return outcome.exit_code, text.getvalue() + outcome.message


def _crash(config: BatchJobConfig) -> None:
    """A first run whose one create attempt gets no answer: it stops leaving what a SIGKILL at that moment would
    leave, the committed intent and no recorded batch."""
    code, text = _run(replace(config, retry=RetryPolicy(max_attempts=1)))
    assert code == 4, text
    with _db(config) as db:
        assert db.execute("SELECT requests, planned_at, adopted FROM batch_intents").fetchall() == [(3, T0, None)]
        assert db.execute("SELECT count(*) FROM batches").fetchone() == (0,)


def _db(config: BatchJobConfig) -> sqlite3.Connection:
    return sqlite3.connect(config.output_path.with_name(config.output_path.name + ".sluicegate.db"))


def _output_ids(out: Path) -> list[str]:
    return sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines())


def test_a_batch_created_but_not_recorded_is_adopted_not_created_again(tmp_path: Path) -> None:
    """Killed after the server made the batch: the re-run finds it in the list, confirms it by its results, no
    second create."""
    api = FakeApi(lose_create="after")
    config, out = _job(tmp_path, api)
    _crash(config)
    assert api.creates == 1
    code, text = _run(config)
    assert code == 0, text
    assert api.creates == 1
    assert "msgbatch_new1 (3 request(s)) is taken as the one" in text
    assert "confirmed" in text
    assert _output_ids(out) == IDS
    with _db(config) as db:
        assert db.execute("SELECT id, ended FROM batches").fetchall() == [("msgbatch_new1", 1)]
        assert db.execute("SELECT count(*) FROM batch_intents").fetchone() == (0,)


def test_an_intent_with_no_batch_on_the_server_is_submitted(tmp_path: Path) -> None:
    """Killed before the create reached the server: nothing matches (an older batch of the same size is out of the
    window), so the items are submitted once."""
    api = FakeApi(lose_create="before")
    api.add("msgbatch_old", T0 - CLOCK_MARGIN - 60, ["x-0", "x-1", "x-2"])
    config, out = _job(tmp_path, api)
    _crash(config)
    assert api.creates == 0
    code, text = _run(config)
    assert code == 0, text
    assert api.creates == 1
    assert "made no batch: submitting them" in text
    assert _output_ids(out) == IDS
    with _db(config) as db:
        assert db.execute("SELECT id FROM batches").fetchall() == [("msgbatch_new1",)]


def test_a_foreign_batch_of_the_same_size_is_rejected_at_results_and_the_items_are_resubmitted(
    tmp_path: Path,
) -> None:
    """Another process's batch of 3 created after the intent is adopted, but its results name other ids: none of
    them reaches the store or the output, it is marked foreign, and our items are submitted."""
    api = FakeApi(lose_create="before")
    config, out = _job(tmp_path, api)
    _crash(config)
    api.add("msgbatch_foreign", T0 + 0.2, ["other-0", "other-1", "other-2"])
    code, text = _run(config)
    assert code == 0, text
    assert "msgbatch_foreign (3 request(s)) is taken as the one" in text
    assert "msgbatch_foreign is not this job's" in text
    assert api.creates == 1
    assert _output_ids(out) == IDS
    assert "other-" not in out.read_text()
    with _db(config) as db:
        assert db.execute("SELECT id FROM foreign_batches").fetchall() == [("msgbatch_foreign",)]
        assert db.execute("SELECT id FROM batches").fetchall() == [("msgbatch_new1",)]
        assert db.execute("SELECT count(*) FROM entries WHERE custom_id LIKE 'other-%'").fetchone() == (0,)


def test_of_two_candidates_the_nearest_is_tried_first_and_ours_is_found_after_a_foreign_one(tmp_path: Path) -> None:
    """Ours and a foreign batch both match: the nearest to the intent (foreign) is rejected, then ours is adopted
    and confirmed; nothing is created again."""
    api = FakeApi(lose_create="after")
    config, out = _job(tmp_path, api)
    _crash(config)  # ours: msgbatch_new1 at T0 + 0.5
    api.add("msgbatch_foreign", T0 + 0.1, ["other-0", "other-1", "other-2"])
    code, text = _run(config)
    assert code == 0, text
    assert "other candidates: msgbatch_new1" in text
    assert "msgbatch_foreign is not this job's" in text
    assert "msgbatch_new1 is confirmed" in text
    assert api.creates == 1
    assert _output_ids(out) == IDS
    assert "other-" not in out.read_text()


def _listed(batch_id: str, created_at: float | None, n: int) -> BatchStatus:
    return BatchStatus(id=batch_id, processing_status="ended", request_counts={"succeeded": n}, created_at=created_at)


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ([_listed("a", 105.0, 3)], ["a"]),
        ([_listed("a", 105.0, 4)], []),  # another size
        ([_listed("known", 105.0, 3)], []),  # recorded by this job or found foreign
        ([_listed("a", 100.0 - CLOCK_MARGIN - 1, 3)], []),  # before the intent, past the clock margin
        ([_listed("a", 100.0 - CLOCK_MARGIN + 1, 3)], ["a"]),  # within the margin: our clock may be ahead
        ([_listed("a", None, 3)], []),  # undated
        ([_listed("far", 160.0, 3), _listed("near", 99.0, 3), _listed("mid", 110.0, 3)], ["near", "mid", "far"]),
    ],
)
def test_intent_candidates(listed: list[BatchStatus], expected: list[str]) -> None:
    """Candidates have the intent's size, are new to the job and within the window, nearest to its time first."""
    intent = BatchIntent(seq=1, planned_at=100.0, requests=3, custom_ids=("a", "b", "c"), adopted=None)
    assert [b.id for b in intent_candidates(intent, listed, {"known"})] == expected


def test_the_list_is_paged_back_to_the_intents_time(tmp_path: Path) -> None:
    """Ours lies behind 150 newer batches of another size: the list is followed page by page and it is found."""
    api = FakeApi(lose_create="after")
    config, out = _job(tmp_path, api)
    _crash(config)
    for i in range(150):
        api.add(f"msgbatch_later{i:03d}", T0 + 1 + i, ["y-0", "y-1"])
    code, text = _run(config)
    assert code == 0, text
    assert "msgbatch_new1 is confirmed" in text
    assert api.creates == 1
    assert _output_ids(out) == IDS
