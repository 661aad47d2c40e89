"""What a batch job needs from a provider's batch API, and the Anthropic Message Batches implementation of it.

The batch runner is the same for every provider: split, record intents, submit, poll, collect, resume. Only the
wire differs (one create call with the requests inline, or a file upload then a create), the limits, how an
interrupted submit's batch is recognised in the account's list, and the usage fields of an answer. Results are
always handed to the runner in the Message Batches results format, the job's own output format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

from .._models import ErrorInfo, ErrorKind, Result, Usage
from ..pricing import PriceTable
from ..providers.anthropic import AnthropicProvider
from .batch_api import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS, BatchClient, BatchStatus
from .batch_ledger import BatchIntent

__all__ = [
    "CLOCK_MARGIN",
    "AnthropicBatches",
    "BatchService",
    "ClientBatches",
    "intent_candidates",
    "result_from_batch",
]

# How much earlier than an intent's local time its batch may carry as created_at: the server's clock against ours
# (NTP keeps them within a second; this covers an unsynchronised machine). A wider margin only lets in more
# candidates, each checked against its results before anything of it is stored.
CLOCK_MARGIN = 600.0
# The API's error types inside an errored batch result, mapped onto the run's error kinds (the type itself is kept
# in the output line). An authentication error here is about that one request, so it is final, not a stop.
_KINDS: dict[str, ErrorKind] = {
    "invalid_request_error": "invalid_request",
    "not_found_error": "invalid_request",
    "request_too_large": "invalid_request",
    "rate_limit_error": "rate_limited",
    "overloaded_error": "overloaded",
}


class BatchService(Protocol):
    """One provider's batch API as a batch job uses it."""

    provider: Literal["anthropic", "openai"]
    max_requests: int  # the API's limits per batch
    max_bytes: int
    envelope: int  # bytes of a submission besides its request lines (and one separator per line)

    def encode(self, custom_id: str, params: Mapping[str, Any]) -> bytes:
        """One request as it goes into a submission."""
        ...

    def group(self, params: Mapping[str, Any]) -> str:
        """Requests of different groups never share a batch (OpenAI: one model per batch)."""
        ...

    async def submit(self, lines: list[bytes], intent: int) -> BatchStatus:
        """Create one batch of these encoded requests; `intent` is the store's key of the create intent."""
        ...

    async def retrieve(self, batch_id: str) -> BatchStatus: ...

    async def cancel(self, batch_id: str) -> BatchStatus: ...

    def list_since(self, since: float) -> AsyncIterator[BatchStatus]: ...

    def candidates(self, intent: BatchIntent, listed: Iterable[BatchStatus], known: set[str]) -> list[BatchStatus]:
        """Listed batches that may be the intent's, likeliest first."""
        ...

    def results(self, batch: BatchStatus) -> AsyncIterator[dict[str, Any]]:
        """An ended batch's result lines in the Message Batches results format."""
        ...

    def usage(self, message: Mapping[str, Any]) -> Usage:
        """The usage of one succeeded answer."""
        ...


def intent_candidates(
    intent: BatchIntent, listed: Iterable[BatchStatus], known: set[str], *, margin: float = CLOCK_MARGIN
) -> list[BatchStatus]:
    """Listed batches that may be the intent's: the same number of requests, created no earlier than its time less
    `margin`, neither recorded by this job nor found foreign; the one created nearest the intent's time first."""
    found = [
        batch
        for batch in listed
        if batch.id not in known
        and batch.requests == intent.requests
        and batch.created_at is not None
        and batch.created_at >= intent.planned_at - margin
    ]
    return sorted(found, key=lambda b: (abs((b.created_at or 0.0) - intent.planned_at), b.id))


class ClientBatches:
    """What every provider's service passes straight to its HTTP client: polling, cancelling, listing."""

    def __init__(self, client: BatchClient) -> None:
        self._client = client

    @staticmethod
    def compact(request: Mapping[str, Any]) -> bytes:
        """One request as compact JSON bytes."""
        return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()

    async def retrieve(self, batch_id: str) -> BatchStatus:
        return await self._client.retrieve(batch_id)

    async def cancel(self, batch_id: str) -> BatchStatus:
        return await self._client.cancel(batch_id)

    def list_since(self, since: float) -> AsyncIterator[BatchStatus]:
        return self._client.list_since(since)


class AnthropicBatches(ClientBatches):
    """The Message Batches API: one create call carries the requests inline (`{"requests": [...]}`)."""

    provider: Literal["anthropic", "openai"] = "anthropic"
    max_requests = MAX_BATCH_REQUESTS
    max_bytes = MAX_BATCH_BYTES
    envelope = len(b'{"requests":[]}')

    def encode(self, custom_id: str, params: Mapping[str, Any]) -> bytes:
        return self.compact({"custom_id": custom_id, "params": AnthropicProvider().body(params, stream=False)})

    def group(self, params: Mapping[str, Any]) -> str:
        return ""

    async def submit(self, lines: list[bytes], intent: int) -> BatchStatus:
        return await self._client.create(b'{"requests":[' + b",".join(lines) + b"]}")

    def candidates(self, intent: BatchIntent, listed: Iterable[BatchStatus], known: set[str]) -> list[BatchStatus]:
        return intent_candidates(intent, listed, known)

    def results(self, batch: BatchStatus) -> AsyncIterator[dict[str, Any]]:
        return self._client.results(batch)

    def usage(self, message: Mapping[str, Any]) -> Usage:
        return Usage.from_anthropic(message.get("usage"))


def result_from_batch(
    index: int,
    custom_id: str,
    result: Mapping[str, Any],
    batch_id: str,
    prices: PriceTable,
    usage_of: Callable[[Mapping[str, Any]], Usage] = lambda message: Usage.from_anthropic(message.get("usage")),
) -> Result:
    """A Result from one line of a batch's results (Message Batches format): succeeded (priced at the batch rate,
    its usage read by `usage_of`, Anthropic's fields by default) or failed with why."""
    kind = result.get("type")
    message = result.get("message")
    if kind == "succeeded" and isinstance(message, Mapping):
        usage = usage_of(message)
        cost = prices.cost(str(message.get("model") or ""), usage, batch=True)
        return Result(index=index, custom_id=custom_id, message=dict(message), usage=usage, cost=cost, attempts=1)
    if kind == "errored":
        found = result.get("error")
        outer: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        nested = outer.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else outer
        error_type = str(inner.get("type") or "api_error")
        error = ErrorInfo(
            kind=_KINDS.get(error_type, "server"),
            message=str(inner.get("message") or f"errored in batch {batch_id}"),
            error_type=error_type,
            request_id=str(outer["request_id"]) if outer.get("request_id") else None,
        )
    elif kind in ("expired", "canceled"):
        why = "expired (it was not processed within 24 h)" if kind == "expired" else "was canceled"
        error = ErrorInfo(kind="server", error_type=str(kind), message=f"batch {batch_id} {why} before this request")
    else:
        error = ErrorInfo(kind="server", error_type="api_error", message=f"unknown result type {kind!r}")
    return Result(index=index, custom_id=custom_id, error=error, attempts=1)
