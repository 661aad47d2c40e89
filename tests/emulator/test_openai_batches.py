"""The emulator's OpenAI Files and Batch APIs, driven by the official `openai` SDK over 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from sluicegate.emulator import RunningEmulator

pytestmark = pytest.mark.e2e

MODEL = "gpt-4o-mini"
SYSTEM = "You are a terse assistant. " * 3


def _line(custom_id: str, text: str, *, model: str = MODEL, url: str = "/v1/chat/completions") -> dict[str, Any]:
    body = {
        "model": model,
        "max_completion_tokens": 40,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
    }
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _client(emu: RunningEmulator, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=emu.openai_base_url, max_retries=0)


def _wait(client: openai.OpenAI, batch_id: str, statuses: set[str], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in statuses:
            return batch, seen
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never reached {statuses}; went through {seen}")


@pytest.fixture
def emu(emulator: Callable[..., RunningEmulator]) -> RunningEmulator:
    """An emulator whose batches take 3 emulated minutes, compressed to about 3 real seconds."""
    return emulator(minute=1.0, batch_seconds=120.0)


def test_full_lifecycle_through_the_sdk(emu: RunningEmulator) -> None:
    """Upload, create, poll through validating -> in_progress -> finalizing -> completed, and download an output
    file with one 200 answer per custom_id and an error file with the bad request's 400."""
    client = _client(emu)
    lines = [_line(f"r{i}", f"question {i}") for i in range(20)]
    lines[7]["body"]["max_completion_tokens"] = 0  # refused by chat completions: goes to the error file
    uploaded = client.files.create(file=("in.jsonl", _jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch"
    assert uploaded.bytes == len(_jsonl(lines))
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
    assert client.files.content(uploaded.id).content == _jsonl(lines)

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "t1"},
    )
    assert batch.status == "validating"
    assert batch.metadata == {"job": "t1"}
    done, seen = _wait(client, batch.id, {"completed"})
    assert seen[0] == "validating"
    assert "in_progress" in seen
    assert seen[-2:] == ["finalizing", "completed"]
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (20, 19, 1)
    assert done.output_file_id is not None
    assert done.error_file_id is not None

    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"r{i}" for i in range(20) if i != 7)
    for row in output:
        assert row["id"].startswith("batch_req_")
        assert row["error"] is None
        assert row["response"]["status_code"] == 200
        assert row["response"]["body"]["object"] == "chat.completion"
        assert row["response"]["body"]["usage"]["completion_tokens"] > 0
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("r7", 400)]
    assert errors[0]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert done.usage is not None
    assert done.usage.output_tokens == sum(o["response"]["body"]["usage"]["completion_tokens"] for o in output)
    assert emu.stats()["batch_requests"]["succeeded"] == 19


def test_cancel_keeps_what_finished(emu: RunningEmulator) -> None:
    """A cancelled batch goes cancelling -> cancelled; finished requests are in the output file, the others in the
    error file with code batch_cancelled, and together they are every request exactly once."""
    client = _client(emu)
    lines = [_line(f"c{i}", str(i)) for i in range(40)]
    uploaded = client.files.create(file=("in.jsonl", _jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    _wait(client, batch.id, {"in_progress"})
    while client.batches.retrieve(batch.id).request_counts.completed < 5:  # type: ignore[union-attr]
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    ended, _ = _wait(client, batch.id, {"cancelled"})
    finished = [json.loads(x) for x in client.files.content(ended.output_file_id).text.splitlines()]
    rest = [json.loads(x) for x in client.files.content(ended.error_file_id).text.splitlines()]
    assert len(finished) >= 5
    assert {r["error"]["code"] for r in rest} == {"batch_cancelled"}
    assert all(r["response"] is None for r in rest)
    assert sorted(r["custom_id"] for r in finished + rest) == sorted(f"c{i}" for i in range(40))
    assert ended.request_counts.completed == len(finished)  # type: ignore[union-attr]
    assert emu.stats()["batch_requests"]["succeeded"] == len(finished)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_validation_failures_fail_the_batch(emu: RunningEmulator) -> None:
    """A file mixing models, repeating a custom_id and naming another url fails validation with each line named."""
    client = _client(emu)
    lines = [_line("a", "x"), _line("a", "y"), _line("b", "z", model="gpt-4o"), _line("c", "w", url="/v1/embeddings")]
    uploaded = client.files.create(file=("bad.jsonl", _jsonl(lines) + b"not json\n"), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed, _ = _wait(client, batch.id, {"failed"})
    assert failed.errors is not None
    found = {(e.line, e.code) for e in failed.errors.data or []}
    expected = {(2, "duplicate_custom_id"), (3, "mismatched_model"), (4, "mismatched_endpoint")}
    assert found == expected | {(5, "invalid_json_line")}
    assert failed.output_file_id is None
    assert emu.stats()["batch_requests"]["succeeded"] == 0


def test_create_errors_and_scoping(emu: RunningEmulator) -> None:
    """Unknown file, wrong purpose, wrong window and another key's objects are refused with OpenAI's errors."""
    client = _client(emu)
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    other = client.files.create(file=("x.jsonl", _jsonl([_line("a", "b")])), purpose="user_data")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=other.id, endpoint="/v1/chat/completions", completion_window="24h")
    mine = client.files.create(file=("x.jsonl", _jsonl([_line("a", "b")])), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    batch = client.batches.create(input_file_id=mine.id, endpoint="/v1/chat/completions", completion_window="24h")
    stranger = _client(emu, key="sk-other")
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(mine.id)
    assert [b.id for b in stranger.batches.list()] == []


def test_list_pages_newest_first(emu: RunningEmulator) -> None:
    """`client.batches.list` pages through every batch of the key, newest first, with `after`."""
    client = _client(emu)
    uploaded = client.files.create(file=("in.jsonl", _jsonl([_line("a", "b")])), purpose="batch")
    made = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(5)
    ]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2]
    assert [b.id for b in client.batches.list(limit=2)] == made[::-1]  # the iterator follows `after`
