"""Message Batches wire format: create-body validation, the MessageBatch object, JSONL results (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sluicegate.emulator.batch_store import Batch

__all__ = ["BatchInputError", "batch_object", "parse_create_body", "results_jsonl", "rfc3339"]

# The real pattern is UNCONFIRMED; this is the documented shape (letters, digits, _ and -, 1..64).
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCH_REQUESTS = 100_000


class BatchInputError(Exception):
    """A create body the API rejects; carries the HTTP status, the error type and the message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _bad(message: str) -> BatchInputError:
    return BatchInputError(400, "invalid_request_error", message)


def _check_params(i: int, params: Any) -> None:
    where = f"requests.{i}.params"
    if not isinstance(params, Mapping):
        raise _bad(f"{where}: Input should be a valid dictionary")
    if "model" not in params:
        raise _bad(f"{where}.model: Field required")
    if not isinstance(params["model"], str):
        raise _bad(f"{where}.model: Input should be a valid string")
    if "max_tokens" not in params:
        raise _bad(f"{where}.max_tokens: Field required")
    max_tokens = params["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _bad(f"{where}.max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        # max_tokens 0 (cache pre-warm) is refused inside batches.
        raise _bad(f"{where}.max_tokens: Input should be greater than or equal to 1")
    if "messages" not in params:
        raise _bad(f"{where}.messages: Field required")
    if not isinstance(params["messages"], list):
        raise _bad(f"{where}.messages: Input should be a valid list")
    if params.get("stream"):
        raise _bad(f"{where}.stream: Streaming is not supported for requests in a message batch")


def parse_create_body(body: Any, *, max_requests: int = MAX_BATCH_REQUESTS) -> list[tuple[str, Mapping[str, Any]]]:
    """Validate a create body as the API does at creation; deeper errors surface later as `errored` results."""
    if not isinstance(body, Mapping):
        raise _bad("body: Input should be a valid dictionary")
    requests = body.get("requests")
    if requests is None:
        raise _bad("requests: Field required")
    if not isinstance(requests, list):
        raise _bad("requests: Input should be a valid list")
    if not requests:
        raise _bad("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise BatchInputError(
            413, "request_too_large", f"Batch exceeds the maximum of {max_requests} requests (got {len(requests)})."
        )
    out: list[tuple[str, Mapping[str, Any]]] = []
    seen: set[str] = set()
    for i, item in enumerate(requests):
        if not isinstance(item, Mapping):
            raise _bad(f"requests.{i}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if custom_id is None:
            raise _bad(f"requests.{i}.custom_id: Field required")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise _bad(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise _bad(
                f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}'; custom_id must be unique in a batch"
            )
        seen.add(custom_id)
        if "params" not in item:
            raise _bad(f"requests.{i}.params: Field required")
        _check_params(i, item["params"])
        out.append((custom_id, item["params"]))
    return out


def rfc3339(epoch: float) -> str:
    """RFC 3339 with microseconds and `Z`, as the API writes batch timestamps."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def batch_object(batch: Batch, base_url: str, wall: Callable[[float], float]) -> dict[str, Any]:
    """The MessageBatch object; `wall` turns emulated seconds into wall-clock epoch seconds."""

    def stamp(t: float | None) -> str | None:
        return None if t is None else rfc3339(wall(t))

    ended = batch.ended_at is not None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": batch.request_counts(),
        "ended_at": stamp(batch.ended_at),
        "created_at": stamp(batch.created_at),
        "expires_at": stamp(batch.expires_at),
        "archived_at": None,
        "cancel_initiated_at": stamp(batch.cancel_initiated_at),
        "results_url": f"{base_url.rstrip('/')}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def results_jsonl(batch: Batch) -> bytes:
    """The results file: one JSON object per line, in completion order."""
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in batch.results)
