"""The emulator's OpenAI Batch API: `/v1/batches` create, retrieve, cancel and list over uploaded JSONL files.

Lifecycle (statuses as the `openai` SDK's `Batch` type lists them): `validating` for a twentieth of the batch
duration after create; then `failed` (the input file broke a rule: `errors.data` names each line) or
`in_progress`, where the requests finish one by one over the emulator's batch duration in a shuffled order, each
through the chat simulation (`batch_chat_completion`: no rate limit, no latency); `finalizing` once all are done
(again a twentieth), then `completed` with `output_file_id` (the 200 answers) and `error_file_id` (the others),
each a JSONL file in the documented line format. `cancel` makes it `cancelling`, then `cancelled` a second
later; the 24 h window makes it `expired`. In both, what finished is in the output file and what did not is in
the error file with the code `batch_cancelled` or `batch_expired`. `request_counts` (`total`, `completed`,
`failed`) move while the batch runs. Scheduling, cancel and expiry reuse the Message Batches store
(`batch_store.py`).

Input rules checked while validating (documented limits; the exact error codes are UNCONFIRMED): at most 50,000
requests, every line a JSON object with a unique `custom_id`, `method` POST, `url` equal to the batch's endpoint
and a `body` object, and one model for the whole file.
"""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sluicegate.emulator.batch_store import Batch, BatchStore
from sluicegate.emulator.openai_api import batch_chat_completion
from sluicegate.emulator.openai_files import keyed, openai_error

if TYPE_CHECKING:  # state.py imports this module: the type only, not a runtime import
    from sluicegate.emulator.state import EmulatorState

__all__ = ["MAX_REQUESTS", "OpenAIBatch", "OpenAIBatches", "batch_api_routes", "validate_input"]

MAX_REQUESTS = 50_000
ENDPOINTS = frozenset({"/v1/chat/completions"})  # the emulator serves chat only
_ALNUM = string.ascii_letters + string.digits
_CANCELLED = "This request was not executed because the batch was cancelled."
_EXPIRED = "This request could not be executed before the completion window expired."


@dataclass(slots=True)
class OpenAIBatch:
    """One batch; times are emulated seconds."""

    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str] | None
    scope: str
    created_at: float
    in_progress_at: float
    core: Batch
    model: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)  # validation errors: the batch fails
    output_file_id: str | None = None
    error_file_id: str | None = None
    finished_at: float | None = None  # when it became completed / cancelled / expired / failed
    usage: dict[str, int] = field(default_factory=lambda: {"input": 0, "cached": 0, "output": 0})
    # When it was last brought up to date: its object is shown as of then, so the status and the files agree.
    checked_at: float = 0.0

    def status(self, now: float, finalize: float) -> str:
        core = self.core
        if self.errors:
            return "failed" if now >= self.in_progress_at else "validating"
        if core.ended_at is None:
            if core.cancel_initiated_at is not None:
                return "cancelling"
            return "validating" if now < self.in_progress_at else "in_progress"
        if core.cancel_initiated_at is not None:
            return "cancelled"
        if core.counts["expired"]:
            return "expired"
        return "completed" if now >= core.ended_at + finalize else "finalizing"


def validate_input(data: bytes, endpoint: str) -> tuple[list[tuple[str, Mapping[str, Any]]], str | None, list[Any]]:
    """(requests as (custom_id, body), the model, errors) of a batch input file; any error fails the batch."""
    requests: list[tuple[str, Mapping[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    first: str | None = None

    def bad(line: int, code: str, message: str, param: str | None = None) -> None:
        if len(errors) < 100:  # the list names the first problems, not every one
            errors.append({"code": code, "line": line, "message": message, "param": param})

    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            bad(number, "invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(item, Mapping):
            bad(number, "invalid_json_line", "This line is not a JSON object.")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            bad(number, "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
            continue
        if custom_id in seen:
            bad(number, "duplicate_custom_id", f"The custom_id '{custom_id}' is used more than once.", "custom_id")
            continue
        seen.add(custom_id)
        if item.get("method") != "POST":
            bad(number, "invalid_method", "The method must be POST.", "method")
        if item.get("url") != endpoint:
            bad(number, "mismatched_endpoint", f"The url must be the batch's endpoint {endpoint}.", "url")
        body = item.get("body")
        if not isinstance(body, Mapping):
            bad(number, "missing_required_parameter", "Missing required parameter: 'body'.", "body")
            continue
        model = body.get("model")
        if isinstance(model, str):
            first = first or model
            if model != first:
                bad(number, "mismatched_model", f"All requests must use the first line's model {first}.", "body.model")
        requests.append((custom_id, body))
    if not requests and not errors:
        bad(0, "empty_file", "The input file has no requests.")
    if len(requests) > MAX_REQUESTS:
        bad(0, "too_many_requests", f"A batch may hold at most {MAX_REQUESTS} requests (got {len(requests)}).")
    return requests, first, errors


class OpenAIBatches:
    """Every OpenAI batch of one emulator, newest last; the Message Batches store schedules their requests."""

    def __init__(self, *, duration: float, deadline: float) -> None:
        self.schedule = BatchStore(duration=duration, deadline=deadline, cancel_delay=1.0, seed=1)
        # Validating and finalizing each take a twentieth of the processing time: long enough to be seen.
        self.validate_seconds = duration / 20
        self.finalize_seconds = duration / 20
        self._rng = random.Random(2)
        self.batches: dict[str, OpenAIBatch] = {}

    def new_id(self, prefix: str, size: int) -> str:
        return prefix + "".join(self._rng.choice(_ALNUM) for _ in range(size))

    def clear(self) -> None:
        self.batches.clear()
        self.schedule.clear()


def batch_api_routes(state: EmulatorState) -> list[Route]:
    """The `/v1/batches` routes of one emulator, over `state.openai_batches` and `state.files`."""
    registry = state.openai_batches
    files = state.files
    scale = float(state.config.minute) / 60.0
    epoch = time.time() - float(state.emulated_now()) * scale

    def wall(t: float | None) -> int | None:
        return None if t is None else int(epoch + t * scale)

    def process(scope: str, usage: dict[str, int]) -> Any:
        def run(body: Mapping[str, Any]) -> dict[str, Any]:
            status, answer = batch_chat_completion(state, body, scope)
            request_id = registry.new_id("req_", 32)
            if status == 200:
                counted = answer["usage"]
                cached = counted["prompt_tokens_details"]["cached_tokens"]
                usage["input"] += counted["prompt_tokens"]
                usage["cached"] += cached
                usage["output"] += counted["completion_tokens"]
                count_tokens(counted["prompt_tokens"] - cached, cached, counted["completion_tokens"])
            kind = "succeeded" if status == 200 else "errored"
            return {"type": kind, "status_code": status, "request_id": request_id, "body": answer}

        return run

    def count_tokens(fresh: int, cached: int, output: int) -> None:
        counters = getattr(state, "stats", None)
        if counters is not None:  # the same counters as a Message Batch request's
            usage = {"input_tokens": fresh, "cache_read_input_tokens": cached, "output_tokens": output}
            counters.batch_result({"type": "succeeded", "message": {"usage": usage}})

    def count_outcome(kind: str) -> None:
        counters = getattr(state, "stats", None)
        if counters is not None and kind != "succeeded":
            counters.batch_result({"type": {"cancelled": "canceled"}.get(kind, kind)})

    def fresh(batch: OpenAIBatch) -> OpenAIBatch:
        now = batch.checked_at = state.emulated_now()
        seen = len(batch.core.results)
        registry.schedule.advance(batch.core, now, process(batch.scope, batch.usage))
        for line in batch.core.results[seen:]:
            count_outcome(str(line["result"]["type"]))
        status = batch.status(now, registry.finalize_seconds)
        if status in ("completed", "cancelled", "expired") and batch.finished_at is None:
            write_files(batch)
            end = batch.core.ended_at or now
            batch.finished_at = end + (registry.finalize_seconds if status == "completed" else 0.0)
        elif status == "failed" and batch.finished_at is None:
            batch.finished_at = batch.in_progress_at
        return batch

    def write_files(batch: OpenAIBatch) -> None:
        out: list[bytes] = []
        err: list[bytes] = []
        for line in batch.core.results:
            result = line["result"]
            kind = result["type"]
            entry: dict[str, Any] = {"id": registry.new_id("batch_req_", 32), "custom_id": line["custom_id"]}
            if kind in ("succeeded", "errored"):
                entry["response"] = {
                    "status_code": result["status_code"],
                    "request_id": result["request_id"],
                    "body": result["body"],
                }
                entry["error"] = None
            else:
                code, message = ("batch_cancelled", _CANCELLED) if kind == "canceled" else ("batch_expired", _EXPIRED)
                entry["response"] = None
                entry["error"] = {"code": code, "message": message}
            (out if kind == "succeeded" else err).append(json.dumps(entry, separators=(",", ":")).encode() + b"\n")
        name = batch.id
        if out:
            batch.output_file_id = files.add(f"{name}_output.jsonl", "batch_output", b"".join(out), batch.scope).id
        if err:
            batch.error_file_id = files.add(f"{name}_error.jsonl", "batch_output", b"".join(err), batch.scope).id

    def as_json(batch: OpenAIBatch) -> dict[str, Any]:
        now = batch.checked_at
        status = batch.status(now, registry.finalize_seconds)
        core = batch.core
        counts = core.counts
        validated = now >= batch.in_progress_at and not batch.errors
        ended = batch.finished_at
        usage = batch.usage
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": wall(batch.created_at),
            "in_progress_at": wall(batch.in_progress_at) if validated else None,
            "expires_at": wall(core.expires_at),
            "finalizing_at": wall(core.ended_at) if status in ("finalizing", "completed") else None,
            "completed_at": wall(ended) if status == "completed" else None,
            "failed_at": wall(ended) if status == "failed" else None,
            "expired_at": wall(ended) if status == "expired" else None,
            "cancelling_at": wall(core.cancel_initiated_at),
            "cancelled_at": wall(ended) if status == "cancelled" else None,
            "request_counts": {
                "total": len(core.requests) if validated else 0,
                "completed": counts["succeeded"],
                "failed": counts["errored"],
            },
            "usage": {
                "input_tokens": usage["input"],
                "input_tokens_details": {"cached_tokens": usage["cached"]},
                "output_tokens": usage["output"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["input"] + usage["output"],
            },
            "metadata": batch.metadata,
        }

    def lookup(request: Request) -> OpenAIBatch | Response:
        batch_id = request.path_params["batch_id"]
        found = registry.batches.get(batch_id)
        if found is None or found.scope != request.state.key:
            return openai_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return fresh(found)

    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return openai_error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, Mapping):
            return openai_error(400, "We could not parse the JSON body of your request.")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return openai_error(400, f"Invalid endpoint {endpoint!r}: the emulator serves /v1/chat/completions.")
        if body.get("completion_window") != "24h":
            return openai_error(400, "completion_window must be '24h'.", param="completion_window")
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, Mapping) and len(metadata) <= 16 and all(isinstance(v, str) for v in metadata.values())
        ):
            return openai_error(400, "metadata: at most 16 string values.", param="metadata")
        file_id = body.get("input_file_id")
        source = files.get(str(file_id), request.state.key)
        if source is None:
            return openai_error(404, f"No such File object: {file_id}", param="input_file_id")
        if source.purpose != "batch":
            return openai_error(400, f"File {file_id} was not uploaded with purpose 'batch'.", param="input_file_id")
        requests, model, errors = validate_input(source.data, str(endpoint))
        now = state.emulated_now()
        start = now + registry.validate_seconds
        core = registry.schedule.create([] if errors else requests, start, scope=request.state.key)
        core.expires_at = now + registry.schedule.deadline
        batch = OpenAIBatch(
            id=registry.new_id("batch_", 32),
            input_file_id=source.id,
            endpoint=str(endpoint),
            metadata=dict(metadata) if metadata else None,
            scope=request.state.key,
            created_at=now,
            checked_at=now,
            in_progress_at=start,
            core=core,
            model=model,
            errors=errors,
        )
        registry.batches[batch.id] = batch
        return JSONResponse(as_json(batch))

    async def retrieve(request: Request) -> Response:
        found = lookup(request)
        return found if isinstance(found, Response) else JSONResponse(as_json(found))

    async def cancel(request: Request) -> Response:
        found = lookup(request)
        if isinstance(found, Response):
            return found
        status = found.status(found.checked_at, registry.finalize_seconds)
        if status not in ("validating", "in_progress", "cancelling"):
            return openai_error(409, f"Cannot cancel a batch with status '{status}'.")
        registry.schedule.cancel(found.core, found.checked_at)
        return JSONResponse(as_json(fresh(found)))

    async def listed(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return openai_error(400, "limit: must be an integer", param="limit")
        if not 1 <= limit <= 100:
            return openai_error(400, "limit: must be between 1 and 100", param="limit")
        mine = [b for b in reversed(registry.batches.values()) if b.scope == request.state.key]
        after = request.query_params.get("after")
        if after:
            ids = [b.id for b in mine]
            mine = mine[ids.index(after) + 1 :] if after in ids else []
        page = [as_json(fresh(b)) for b in mine[:limit]]
        return JSONResponse(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(mine) > limit,
            }
        )

    return [
        keyed(state, "POST", "/v1/batches", create),
        keyed(state, "GET", "/v1/batches", listed),
        keyed(state, "GET", "/v1/batches/{batch_id}", retrieve),
        keyed(state, "POST", "/v1/batches/{batch_id}/cancel", cancel),
    ]
