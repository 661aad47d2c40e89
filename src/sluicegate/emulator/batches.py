"""The emulator's Message Batches endpoints: create, retrieve, list, cancel, delete and JSONL results.

Each request of a batch runs through the core's single-request simulation (`complete_message` with the batch
service tier, no online rate limits, no latency) when its emulated due time arrives; see `batch_store.py`.
Every read of a batch first advances it to the current emulated time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sluicegate.emulator.batch_format import BatchInputError, batch_object, parse_create_body, results_jsonl
from sluicegate.emulator.batch_store import Batch, BatchStore, Processor
from sluicegate.emulator.organization import HEADER as ORG_HEADER
from sluicegate.emulator.organization import organization_id

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

__all__ = ["BATCH_SCOPE", "BatchStore", "batch_routes", "core_processor"]

BATCH_SCOPE = "/batches"  # appended to a key's cache scope: the batch side of its prompt cache, when isolated

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, error_type: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONResponse(body, status_code=status)


def _api_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _not_found(batch_id: str) -> JSONResponse:
    return _error(404, "not_found_error", f"No batch found with id '{batch_id}'.")


def core_processor(state: EmulatorState, scope: str = "", deferred: list[Any] | None = None) -> Processor:
    """Run one batch request through the core's single-request simulation, errors becoming `errored` results;
    with `deferred`, its cache writes are kept there until the batch ends (see `batch_cache_isolated`)."""
    from sluicegate.emulator.errors import ApiError
    from sluicegate.emulator.messages import complete_message

    def process(params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            message = complete_message(state, dict(params), service_tier="batch", scope=scope, deferred=deferred)
        except ApiError as exc:
            return {"type": "errored", "error": exc.anthropic_body()}
        return {"type": "succeeded", "message": message}

    return process


def batch_routes(state: EmulatorState, *, process: Processor | None = None) -> list[Route]:
    """The Message Batches routes of one emulator, over `state.batches` (`state.config.minute` scales time)."""
    store: BatchStore = state.batches

    isolated = state.config.batch_cache_isolated
    writes: dict[str, list[Any]] = {}  # cache writes of running batches, readable once each batch ends

    def runner(batch: Batch) -> Processor:
        # The core processor is bound to the batch's key so its requests use that key's prompt cache (its batch
        # side only, when isolated).
        if process is not None:
            return process
        if not isolated:
            return core_processor(state, batch.scope)
        return core_processor(state, batch.scope + BATCH_SCOPE, writes.setdefault(batch.id, []))

    scale = float(state.config.minute) / 60.0  # real seconds per emulated second

    # One anchor, so equal emulated times always print as equal timestamps.
    epoch = time.time() - float(state.emulated_now()) * scale

    def wall(t: float) -> float:
        return epoch + t * scale

    def fresh(batch: Batch) -> Batch:
        seen = len(batch.results)
        store.advance(batch, state.emulated_now(), runner(batch))
        if batch.ended_at is not None and batch.id in writes:
            for plan in writes.pop(batch.id):
                state.cache.commit(plan, state.emulated_now())
        counters = state.stats  # read per call: reset replaces it
        for line in batch.results[seen:]:
            counters.batch_result(line["result"])
        return batch

    def base(request: Request) -> str:
        return str(request.base_url)

    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "invalid_request_error", "Request body is not valid JSON.")
        try:
            requests = parse_create_body(body, max_requests=store.max_requests)
        except BatchInputError as exc:
            return _error(exc.status, exc.error_type, exc.message)
        batch = store.create(requests, state.emulated_now(), scope=_api_key(request))
        return JSONResponse(batch_object(batch, base(request), wall))

    async def retrieve(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = store.get(batch_id)
        if batch is None:
            return _not_found(batch_id)
        return JSONResponse(batch_object(fresh(batch), base(request), wall))

    async def list_batches(request: Request) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, "invalid_request_error", "limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return _error(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
        if query.get("before_id") and query.get("after_id"):
            return _error(400, "invalid_request_error", "Only one of before_id and after_id may be given.")
        page, has_more = store.page(limit=limit, before_id=query.get("before_id"), after_id=query.get("after_id"))
        data = [batch_object(fresh(b), base(request), wall) for b in page]
        return JSONResponse(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def cancel(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = store.get(batch_id)
        if batch is None:
            return _not_found(batch_id)
        fresh(batch)
        store.cancel(batch, state.emulated_now())
        return JSONResponse(batch_object(batch, base(request), wall))

    async def delete(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = store.get(batch_id)
        if batch is None:
            return _not_found(batch_id)
        if fresh(batch).ended_at is None:
            return _error(
                400,
                "invalid_request_error",
                f"Batch {batch_id} cannot be deleted while it is {batch.status}; cancel it and wait until it ends.",
            )
        store.delete(batch_id)
        return JSONResponse({"id": batch_id, "type": "message_batch_deleted"})

    async def results(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        batch = store.get(batch_id)
        if batch is None:
            return _not_found(batch_id)
        if fresh(batch).ended_at is None:
            # The real message is UNCONFIRMED; the SDK never gets here because results_url is still null.
            return _error(404, "not_found_error", f"Results for batch {batch_id} are not available yet.")
        return Response(results_jsonl(batch), media_type="application/binary")

    invalid_keys = state.config.invalid_keys

    def checked(request: Request, key: str) -> Response | None:
        """The 401/400 the API answers before looking at the batch, or None."""
        if not key:
            return _error(401, "authentication_error", "x-api-key header is required")
        if key in invalid_keys:
            return _error(401, "authentication_error", "invalid x-api-key")
        if state.config.require_version and not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def route(method: str, path: str, handler: Handler) -> Route:
        """`handler` behind the key and version checks, its answers carrying the key's organization id and
        counted in the stats as `METHOD path`."""
        endpoint = f"{method} {path}"

        async def wrapped(request: Request) -> Response:
            key = _api_key(request)
            response = checked(request, key)
            if response is None:
                response = await handler(request)
                response.headers[ORG_HEADER] = organization_id(key)
            state.stats.count(endpoint, response.status_code)
            return response

        return Route(path, wrapped, methods=[method])

    return [
        route("POST", "/v1/messages/batches", create),
        route("GET", "/v1/messages/batches", list_batches),
        route("GET", "/v1/messages/batches/{batch_id}", retrieve),
        route("DELETE", "/v1/messages/batches/{batch_id}", delete),
        route("POST", "/v1/messages/batches/{batch_id}/cancel", cancel),
        route("GET", "/v1/messages/batches/{batch_id}/results", results),
    ]
