"""The OpenAI Batch API's side of a batch job: batch objects, result lines and interrupted-submit matching (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.jobs.batch_ledger import BatchIntent
from sluicegate.jobs.batch_service import result_from_batch
from sluicegate.jobs.openai_batch import OpenAIBatchClient, OpenAIBatches, OpenAIBatchStatus, result_of
from sluicegate.pricing import default_table


def _batch(batch_id: str, status: str, *, meta: dict[str, str] | None = None, **counts: int) -> OpenAIBatchStatus:
    return OpenAIBatchStatus.from_openai(
        {"id": batch_id, "status": status, "created_at": 1000, "request_counts": counts, "metadata": meta}
    )


@pytest.mark.parametrize(
    ("status", "ended"),
    [
        ("validating", False),
        ("in_progress", False),
        ("finalizing", False),
        ("cancelling", False),
        ("completed", True),
        ("failed", True),
        ("expired", True),
        ("cancelled", True),
    ],
)
def test_every_terminal_status_and_only_those_end_a_batch(status: str, ended: bool) -> None:
    """completed, failed, expired and cancelled end a batch; the four others keep it polled."""
    assert _batch("b", status).ended is ended


def test_counts_map_onto_the_message_batches_names() -> None:
    """total/completed/failed become processing/succeeded/errored, and the total is kept."""
    found = _batch("b", "in_progress", total=10, completed=6, failed=1)
    assert found.request_counts == {"processing": 3, "succeeded": 6, "errored": 1}
    assert found.requests == 10


def test_validation_errors_are_kept_as_text() -> None:
    """A failed batch's errors.data entries are kept, each naming its line and code."""
    found = OpenAIBatchStatus.from_openai(
        {
            "id": "b",
            "status": "failed",
            "errors": {"data": [{"code": "mismatched_model", "line": 3, "message": "one model", "param": None}]},
        }
    )
    assert found.errors == ("line 3: mismatched_model: one model",)


ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1024}},
}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {"custom_id": "a", "response": {"status_code": 200, "request_id": "r", "body": ANSWER}, "error": None},
            {"type": "succeeded", "message": ANSWER},
        ),
        (
            {
                "custom_id": "a",
                "response": {
                    "status_code": 400,
                    "request_id": "req_9",
                    "body": {"error": {"message": "bad n", "type": "invalid_request_error"}},
                },
                "error": None,
            },
            {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "bad n"},
                    "request_id": "req_9",
                },
            },
        ),
        ({"custom_id": "a", "response": None, "error": {"code": "batch_expired", "message": "x"}}, {"type": "expired"}),
        (
            {"custom_id": "a", "response": None, "error": {"code": "batch_cancelled", "message": "x"}},
            {"type": "canceled"},
        ),
        (
            {"custom_id": "a", "response": None, "error": {"code": "request_timeout", "message": "slow"}},
            {"type": "errored", "error": {"type": "error", "error": {"type": "request_timeout", "message": "slow"}}},
        ),
    ],
)
def test_output_and_error_file_lines_become_message_batches_results(
    line: dict[str, Any], expected: dict[str, Any]
) -> None:
    """An answer, an HTTP error, an expired, a cancelled and a timed-out line map to the job's result objects."""
    assert result_of(line) == expected


def test_a_succeeded_answer_is_priced_from_openai_usage_at_the_batch_rate() -> None:
    """Cached prompt tokens are cache reads, the rest input; the total is half the online price."""
    service = OpenAIBatches(OpenAIBatchClient(api_key="k", base_url="http://x/v1"), "job")
    result = result_from_batch(0, "a", {"type": "succeeded", "message": ANSWER}, "b", default_table(), service.usage)
    assert (result.usage.input_tokens, result.usage.cache_read_input_tokens) == (976, 1024)
    online = default_table().cost("gpt-4o-mini", result.usage)
    assert online is not None
    assert result.cost == pytest.approx(online / 2)


def test_an_interrupted_submit_is_matched_by_its_metadata_only() -> None:
    """Only the listed batch naming this job and this intent is a candidate, whatever its size or time; one
    already known to the job is not."""
    service = OpenAIBatches(OpenAIBatchClient(api_key="k", base_url="http://x/v1"), "job1")
    intent = BatchIntent(seq=4, planned_at=1000.0, requests=3, custom_ids=("a", "b", "c"), adopted=None)
    listed = [
        _batch("other-job", "in_progress", meta={"sluicegate_job": "job2", "sluicegate_intent": "4"}, total=3),
        _batch("other-intent", "in_progress", meta={"sluicegate_job": "job1", "sluicegate_intent": "5"}, total=3),
        _batch("no-meta", "in_progress", total=3),
        _batch("ours", "validating", meta={"sluicegate_job": "job1", "sluicegate_intent": "4"}),
    ]
    assert [b.id for b in service.candidates(intent, listed, set())] == ["ours"]
    assert service.candidates(intent, listed, {"ours"}) == []
