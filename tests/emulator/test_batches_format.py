"""Message Batches wire format: create validation, the MessageBatch object and JSONL results."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluicegate.emulator.batch_format import BatchInputError, batch_object, parse_create_body, results_jsonl, rfc3339
from sluicegate.emulator.batch_store import BatchStore

PARAMS = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_valid_body_parses_in_order() -> None:
    """A valid body yields (custom_id, params) pairs in request order."""
    body = {"requests": [{"custom_id": "a", "params": PARAMS}, {"custom_id": "b-2_", "params": PARAMS}]}
    assert [cid for cid, _ in parse_create_body(body)] == ["a", "b-2_"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "requests: Field required"),
        ({"requests": []}, 400, "at least 1 item"),
        ({"requests": [{"params": PARAMS}]}, 400, "requests.0.custom_id: Field required"),
        ({"requests": [{"custom_id": "a b", "params": PARAMS}]}, 400, "pattern"),
        ({"requests": [{"custom_id": "x" * 65, "params": PARAMS}]}, 400, "pattern"),
        ({"requests": [{"custom_id": "a", "params": PARAMS}, {"custom_id": "a", "params": PARAMS}]}, 400, "Duplicate"),
        ({"requests": [{"custom_id": "a"}]}, 400, "requests.0.params: Field required"),
        ({"requests": [{"custom_id": "a", "params": {**PARAMS, "max_tokens": 0}}]}, 400, "greater than or equal to 1"),
        ({"requests": [{"custom_id": "a", "params": {**PARAMS, "stream": True}}]}, 400, "stream"),
        ({"requests": [{"custom_id": "a", "params": {"max_tokens": 5, "messages": []}}]}, 400, "model: Field required"),
        ({"requests": [{"custom_id": f"r{i}", "params": PARAMS} for i in range(3)]}, 413, "maximum of 2"),
    ],
)
def test_invalid_bodies_are_rejected(body: dict[str, Any], status: int, fragment: str) -> None:
    """Shape errors, bad or duplicate custom_ids and oversize batches are rejected at creation."""
    with pytest.raises(BatchInputError, match=fragment) as info:
        parse_create_body(body, max_requests=2)
    assert info.value.status == status


def test_batch_object_before_and_after_end() -> None:
    """results_url and ended_at are null until the end; then results_url is absolute on the given host."""
    store = BatchStore(duration=10.0)
    batch = store.create([("a", PARAMS)], 0.0)
    obj = batch_object(batch, "http://127.0.0.1:1234/", lambda t: 1_700_000_000.0 + t)
    assert obj["processing_status"] == "in_progress"
    assert obj["results_url"] is None
    assert obj["ended_at"] is None
    assert obj["created_at"] == "2023-11-14T22:13:20.000000Z"
    store.advance(batch, 10.0, lambda p: {"type": "succeeded", "message": {}})
    obj = batch_object(batch, "http://127.0.0.1:1234/", lambda t: 1_700_000_000.0 + t)
    assert obj["results_url"] == f"http://127.0.0.1:1234/v1/messages/batches/{batch.id}/results"
    assert obj["ended_at"] == rfc3339(1_700_000_010.0)
    lines = results_jsonl(batch).decode().splitlines()
    assert json.loads(lines[0]) == {"custom_id": "a", "result": {"type": "succeeded", "message": {}}}
