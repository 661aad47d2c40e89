"""The Message Batches client and the batch job in-process, over a mock transport: retries, stops, result mapping."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest

from sluicegate.jobs._view import JobView
from sluicegate.jobs.batch_api import BatchApiError, BatchClient, BatchRejectedError, BatchStatus
from sluicegate.jobs.batch_runner import BatchJobConfig, run_batch_job
from sluicegate.jobs.batch_service import result_from_batch
from sluicegate.jobs.outcome import JobOutcome
from sluicegate.jobs.reader import Defaults
from sluicegate.pricing import default_table
from sluicegate.retry import RetryPolicy

from .conftest import batch_message

FAST = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.0)
KEY = "sk-ant-test-mock-key"


def _batch(batch_id: str, status: str, n: int, *, url: str | None = None) -> dict[str, Any]:
    ended = status == "ended"
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {"processing": 0 if ended else n, "succeeded": n if ended else 0, "errored": 0},
        "results_url": url,
    }


def _message(custom_id: str) -> dict[str, Any]:
    return batch_message(custom_id, input_tokens=1000, output_tokens=200)


def _json(status: int, body: Any, **headers: str) -> httpx2.Response:
    return httpx2.Response(status, content=json.dumps(body).encode(), headers=headers)


def _error(status: int, error_type: str) -> httpx2.Response:
    return _json(status, {"type": "error", "error": {"type": error_type, "message": "nope"}}, **{"retry-after": "0"})


def _client(handle: Callable[[httpx2.Request], Any]) -> BatchClient:
    return BatchClient(api_key=KEY, base_url="http://api.test", retry=FAST, transport=httpx2.MockTransport(handle))


def _job(tmp_path: Path, handle: Callable[[httpx2.Request], httpx2.Response], **extra: Any) -> BatchJobConfig:
    """A batch job over in.jsonl/out.jsonl in tmp_path, talking to `handle`, with fast retries and no poll wait."""
    return BatchJobConfig(
        input_path=tmp_path / "in.jsonl",
        output_path=tmp_path / "out.jsonl",
        api_key=KEY,
        base_url="http://api.test",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=16),
        poll_interval=0.0,
        retry=FAST,
        transport=httpx2.MockTransport(handle),
        **extra,
    )


def _run(config: BatchJobConfig) -> JobOutcome:
    return anyio.run(lambda: run_batch_job(config))


def test_create_retries_429_and_529_then_succeeds() -> None:
    """Transient statuses on create are retried (retry-after honoured) until the batch is created."""
    answers = [
        _error(429, "rate_limit_error"),
        _error(529, "overloaded_error"),
        _json(200, _batch("b1", "in_progress", 2)),
    ]
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def main() -> BatchStatus:
        async with _client(handle) as client:
            return await client.create(b'{"requests":[]}')

    batch = anyio.run(main)
    assert (batch.id, batch.ended, len(seen)) == ("b1", False, 3)
    assert seen[0].headers["x-api-key"] == KEY
    assert seen[0].headers["anthropic-version"]


@pytest.mark.parametrize(
    ("status", "error_type", "raised", "attempts"),
    [
        (401, "authentication_error", BatchApiError, 1),
        (403, "permission_error", BatchApiError, 1),
        (500, "api_error", BatchApiError, 4),
        (400, "invalid_request_error", BatchRejectedError, 1),
        (413, "request_too_large", BatchRejectedError, 1),
    ],
)
def test_final_failures_stop_or_refuse(status: int, error_type: str, raised: type[Exception], attempts: int) -> None:
    """401/403 stop at once, 5xx stop after the policy's attempts, 400/413 refuse the batch; never naming the key."""
    calls = 0

    def handle(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        return _error(status, error_type)

    async def main() -> None:
        async with _client(handle) as client:
            await client.create(b'{"requests":[]}')

    with pytest.raises(raised) as info:
        anyio.run(main)
    assert calls == attempts
    assert KEY not in str(info.value)
    assert (status in (401, 403)) == ("ANTHROPIC_API_KEY" in str(info.value))


def test_a_broken_results_stream_is_read_again() -> None:
    """A connection drop mid-results fetches them again; every line arrives (the first ones twice)."""
    lines = [
        json.dumps({"custom_id": f"r{i}", "result": {"type": "succeeded", "message": _message(f"r{i}")}})
        for i in range(3)
    ]
    calls = 0

    async def broken() -> AsyncIterator[bytes]:
        yield (lines[0] + "\n").encode()
        raise httpx2.ReadError("connection reset")

    def handle(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx2.Response(200, content=broken())
        return httpx2.Response(200, content="\n".join(lines).encode())  # no final newline: still read

    async def main() -> list[str]:
        async with _client(handle) as client:
            batch = BatchStatus(id="b1", processing_status="ended", results_url="http://api.test/results/b1")
            return [line["custom_id"] async for line in client.results(batch)]

    assert anyio.run(main) == ["r0", "r0", "r1", "r2"]
    assert calls == 2


@pytest.mark.parametrize(
    ("result", "error_type", "fragment"),
    [
        ({"type": "expired"}, "expired", "expired"),
        ({"type": "canceled"}, "canceled", "canceled"),
        (
            {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}},
            },
            "invalid_request_error",
            "bad model",
        ),
    ],
)
def test_failed_batch_results_name_the_reason(result: dict[str, Any], error_type: str, fragment: str) -> None:
    """Expired, canceled and errored results become errored output lines whose error type names the reason."""
    line = result_from_batch(4, "r4", result, "msgbatch_x", default_table()).to_batch_line()
    assert line["custom_id"] == "r4"
    assert line["result"]["type"] == "errored"
    assert line["result"]["error"]["error"]["type"] == error_type
    assert fragment in line["result"]["error"]["error"]["message"]


def test_succeeded_results_cost_half_the_online_price() -> None:
    """A succeeded result keeps the message and is priced with the table's batch discount."""
    message = _message("r1")
    result = result_from_batch(1, "r1", {"type": "succeeded", "message": message}, "b", default_table())
    online = default_table().cost(message["model"], result.usage)
    assert online is not None
    assert result.cost == pytest.approx(online * 0.5)
    assert result.to_batch_line() == {"custom_id": "r1", "result": {"type": "succeeded", "message": message}}


def test_a_job_rides_out_transient_errors_on_every_call(tmp_path: Path) -> None:
    """503 on create, 529 on poll and a dropped results stream: the job still ends with every id once."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"p{i}"}) + "\n" for i in range(3)))
    calls: dict[str, int] = {"create": 0, "poll": 0, "results": 0}
    submitted: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST":
            calls["create"] += 1
            if calls["create"] == 1:
                return _error(503, "api_error")
            submitted.extend(r["custom_id"] for r in json.loads(request.content)["requests"])
            return _json(200, _batch("b1", "in_progress", 3))
        if path.endswith("/results"):
            calls["results"] += 1
            body = "".join(
                json.dumps({"custom_id": cid, "result": {"type": "succeeded", "message": _message(cid)}}) + "\n"
                for cid in submitted
            )
            if calls["results"] == 1:
                return httpx2.Response(500, content=b"oops")
            return httpx2.Response(200, content=body.encode())
        calls["poll"] += 1
        if calls["poll"] == 1:
            return _error(529, "overloaded_error")
        if calls["poll"] == 2:
            return _json(200, _batch("b1", "in_progress", 3))
        return _json(200, _batch("b1", "ended", 3, url="http://api.test/v1/messages/batches/b1/results"))

    config = _job(tmp_path, handle, settings_base="test")
    console_text = io.StringIO()
    outcome = anyio.run(lambda: run_batch_job(config, view=JobView(say=lambda text: print(text, file=console_text))))
    assert outcome.exit_code == 0, outcome.message
    assert calls == {"create": 2, "poll": 3, "results": 2}
    assert sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines()) == ["doc-0", "doc-1", "doc-2"]
    assert "batches: 1 submitted, 1 ended; requests: 0 processing, 3 succeeded" in console_text.getvalue()
    assert KEY not in console_text.getvalue() + outcome.message


def test_a_recorded_batch_the_api_does_not_know_stops_the_job(tmp_path: Path) -> None:
    """A 404 for a batch an earlier run recorded stops the job (exit 4) instead of paying for its requests twice."""
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "doc-0", "prompt": "p"}) + "\n")
    creates = 0

    def handle(request: httpx2.Request) -> httpx2.Response:
        nonlocal creates
        if request.method == "POST":
            creates += 1
            return _json(200, _batch("b-old", "in_progress", 1))
        return _error(404, "not_found_error")

    config = _job(tmp_path, handle)
    for _ in range(2):  # the first run records the batch, the second finds it unknown before submitting anything
        outcome = _run(config)
        assert outcome.exit_code == 4, outcome.message
        assert "b-old" in outcome.message
        assert "--restart" in outcome.message
    assert creates == 1


def test_a_batch_whose_results_are_all_stored_is_ended_without_reading_them_again(tmp_path: Path) -> None:
    """A run that stored every result but stopped before marking the batch ended: the re-run just marks it."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"id": "doc-0", "prompt": "p"}) + "\n")
    paths: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        paths.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return _json(200, _batch("b1", "in_progress", 1))
        if request.url.path.endswith("/results"):
            line = {"custom_id": "doc-0", "result": {"type": "succeeded", "message": _message("doc-0")}}
            return httpx2.Response(200, content=json.dumps(line).encode())
        return _json(200, _batch("b1", "ended", 1, url="http://api.test/v1/messages/batches/b1/results"))

    config = _job(tmp_path, handle)
    assert _run(config).exit_code == 0
    with sqlite3.connect(tmp_path / "out.jsonl.sluicegate.db") as db:
        db.execute("UPDATE batches SET ended = 0")
    paths.clear()
    assert _run(config).exit_code == 0
    assert paths == ["GET /v1/messages/batches/b1"]  # re-attach check, then marked ended; results not read again
    assert len(out.read_text().splitlines()) == 1


def test_batches_stay_within_the_byte_and_count_limits(tmp_path: Path) -> None:
    """Every create body fits the byte limit and the request cap, and each item is in exactly one batch."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": "x" * (1 + i * 7)}) + "\n" for i in range(40)))
    bodies: list[bytes] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            bodies.append(request.content)
            n = len(json.loads(request.content)["requests"])
            return _json(200, _batch(f"b{len(bodies)}", "in_progress", n))
        batch_id = request.url.path.split("/")[4]
        if request.url.path.endswith("/results"):
            ids = [r["custom_id"] for r in json.loads(bodies[int(batch_id[1:]) - 1])["requests"]]
            lines = [{"custom_id": cid, "result": {"type": "succeeded", "message": _message(cid)}} for cid in ids]
            return httpx2.Response(200, content="\n".join(json.dumps(line) for line in lines).encode())
        return _json(200, _batch(batch_id, "ended", 0))

    config = _job(tmp_path, handle, max_requests=6, max_bytes=1200)
    outcome = _run(config)
    assert outcome.exit_code == 0, outcome.message
    sent = [r["custom_id"] for body in bodies for r in json.loads(body)["requests"]]
    assert sorted(sent) == sorted(f"doc-{i}" for i in range(40))
    assert all(len(body) <= 1200 for body in bodies)
    assert all(len(json.loads(body)["requests"]) <= 6 for body in bodies)
    assert any(len(json.loads(body)["requests"]) < 6 for body in bodies[:-1])  # the byte limit split some early
    assert len(out.read_text().splitlines()) == 40


class _SteppingClock:
    """A Clock of the user's own that does not drive the event loop: a sleep moves its time and returns at once."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


def test_a_job_waits_between_polls_on_its_clock(tmp_path: Path) -> None:
    """Polls of a batch that ends on the third one come a poll interval apart on the clock given to the job (any
    Clock, not only one that drives the event loop), and the final tally gives that clock's wall time."""
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "doc-0", "prompt": "p"}) + "\n")
    clock = _SteppingClock()
    polled: list[float] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return _json(200, _batch("b1", "in_progress", 1))
        if request.url.path.endswith("/results"):
            line = {"custom_id": "doc-0", "result": {"type": "succeeded", "message": _message("doc-0")}}
            return httpx2.Response(200, content=(json.dumps(line) + "\n").encode())
        polled.append(clock.now())
        if len(polled) < 3:
            return _json(200, _batch("b1", "in_progress", 1))
        return _json(200, _batch("b1", "ended", 1, url="http://api.test/v1/messages/batches/b1/results"))

    config = dataclasses.replace(_job(tmp_path, handle, settings_base="test"), poll_interval=30.0)
    notes: list[str] = []
    outcome = anyio.run(lambda: run_batch_job(config, view=JobView(say=notes.append), clock=clock))
    assert outcome.exit_code == 0, outcome.message
    assert polled == [0.0, 30.0, 60.0]
    assert notes[-1].endswith("wall time 60.0 s")
