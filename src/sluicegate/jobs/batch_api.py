"""The Anthropic Message Batches API over HTTP: create, retrieve, list and stream results, retried by the policy.

Only the calls `sluicegate batch` needs. Transient failures (429, 5xx, 529, connection errors, timeouts) are retried
with the policy's backoff, `retry-after` first; a bad key (401/403) stops at once. The key goes in a header and
nowhere else: never in an error message, a log line or the store.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import anyio
import httpx2

from .._attempt import status_outcome, transport_outcome
from .._clock import Clock, SystemClock
from .._exceptions import BatchApiError, BatchRejectedError
from .._gate import AttemptGate, Pass
from .._models import Usage
from ..providers.anthropic import AnthropicProvider
from ..providers.base import Provider
from ..retry import Outcome, RetryPolicy

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchApiError",
    "BatchClient",
    "BatchRejectedError",
    "BatchStatus",
]

# The API's limits per batch (api-fidelity, Message Batches): at most 100,000 requests or 256 MB of request body,
# whichever comes first; a larger batch is refused with 413. MB taken as 10**6 bytes, the smaller reading.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256_000_000

_PATH = "/v1/messages/batches"
_LIST_PAGE = 100
_TIMEOUT = httpx2.Timeout(connect=10.0, read=120.0, write=600.0, pool=30.0)  # a create may upload 256 MB


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """What a create or retrieve returned, as far as a job needs it."""

    id: str
    processing_status: str  # in_progress | canceling | ended
    request_counts: Mapping[str, int] = field(default_factory=dict)
    results_url: str | None = None
    created_at: float | None = None  # epoch seconds

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def requests(self) -> int:
        """How many requests it holds (the counts always sum to the total)."""
        return sum(self.request_counts.values())

    @classmethod
    def from_json(cls, data: Any) -> BatchStatus:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise TypeError("not a message_batch object")
        counts = data.get("request_counts")
        return cls(
            id=data["id"],
            processing_status=str(data.get("processing_status") or ""),
            request_counts={str(k): int(v) for k, v in counts.items()} if isinstance(counts, Mapping) else {},
            results_url=data.get("results_url") if isinstance(data.get("results_url"), str) else None,
            created_at=_epoch(data.get("created_at")),
        )


class _Retry(Exception):
    """One attempt failed in a way the policy may retry."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


class BatchClient:
    """One HTTP client for the Message Batches endpoints of one API base URL."""

    # What a subclass for another provider's batch API replaces: auth headers and error bodies, the key's name.
    provider: Provider = AnthropicProvider()
    key_variable = "ANTHROPIC_API_KEY"
    list_path = _PATH
    after_param = "after_id"  # the list's cursor parameter

    @staticmethod
    def parse_status(data: Any) -> BatchStatus:
        """A listed batch object as a BatchStatus."""
        return BatchStatus.from_json(data)

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        retry: RetryPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = self.provider.auth_headers(api_key)
        self._transport = transport
        self._clock = clock or SystemClock()
        # The same attempt policy as the engine's, without a rate limiter: batch calls are few and not metered.
        self._gate = AttemptGate(retry=retry or RetryPolicy(), clock=self._clock, rng=random.Random())
        self._client: httpx2.AsyncClient | None = None

    async def __aenter__(self) -> BatchClient:
        self._client = httpx2.AsyncClient(headers=self._headers, timeout=_TIMEOUT, transport=self._transport)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()
            self._client = None

    async def create(self, body: bytes) -> BatchStatus:
        """POST a batch (`body` is the whole `{"requests": [...]}` JSON). Each attempt is shielded from
        cancellation: a Ctrl-C waits for the answer, so a batch the server created is never left unrecorded."""
        headers = {"content-type": "application/json"}
        data = await self._call(
            "create a batch", "POST", self._base + _PATH, content=body, headers=headers, shield=True
        )
        return BatchStatus.from_json(data)

    async def retrieve(self, batch_id: str) -> BatchStatus:
        """GET a batch's status (idempotent: meant for polling)."""
        return BatchStatus.from_json(
            await self._call(f"poll batch {batch_id}", "GET", f"{self._base}{_PATH}/{batch_id}")
        )

    async def cancel(self, batch_id: str) -> BatchStatus:
        """Ask the API to cancel a batch (it answers `canceling`; requests not yet processed end `canceled`)."""
        return BatchStatus.from_json(
            await self._call(f"cancel batch {batch_id}", "POST", f"{self._base}{_PATH}/{batch_id}/cancel")
        )

    async def list_since(self, since: float) -> AsyncIterator[BatchStatus]:
        """The account's batches newest first, page by page, until one created before `since` (epoch seconds)."""
        after: str | None = None
        while True:
            query = f"?limit={_LIST_PAGE}" + (f"&{self.after_param}={after}" if after else "")
            page = await self._call("list batches", "GET", self._base + self.list_path + query)
            data = page.get("data") if isinstance(page, Mapping) else None
            for item in data if isinstance(data, list) else []:
                batch = self.parse_status(item)
                if batch.created_at is not None and batch.created_at < since:
                    return
                yield batch
            after = page.get("last_id") if isinstance(page, Mapping) else None
            if not (isinstance(page, Mapping) and page.get("has_more") and isinstance(after, str)):
                return

    async def results(self, batch: BatchStatus) -> AsyncIterator[dict[str, Any]]:
        """The result lines of an ended batch, streamed. A broken stream is fetched again from the start, so a
        line may come twice: the caller keeps the first."""
        url = batch.results_url or f"{self._base}{_PATH}/{batch.id}/results"
        what = f"read the results of batch {batch.id}"
        attempt = 0
        started = self._clock.now()
        while True:
            attempt += 1
            passed = await self._gate.acquire()
            try:
                async with self._open("GET", url, headers={"accept": "application/binary"}) as response:
                    await self._check(response)
                    try:
                        async for line in response.aiter_lines():
                            if line.strip():
                                parsed = json.loads(line)
                                if isinstance(parsed, dict):
                                    yield parsed
                    except (httpx2.TransportError, httpx2.StreamError, ValueError) as exc:
                        raise _Retry(Outcome(failure="transport"), f"results stream broke: {_name(exc)}") from exc
            except (_Retry, httpx2.TransportError) as exc:
                attempt -= not await self._backoff(what, passed, _as_retry(exc), attempt, started)
            except BaseException:
                self._gate.cancelled(passed)
                raise
            else:
                self._gate.succeeded(passed, Usage())
                return

    # -- internals ---------------------------------------------------------------------------------------------

    def _open(self, method: str, url: str, **kwargs: Any) -> Any:
        if self._client is None:
            raise RuntimeError("BatchClient used outside `async with`")
        return self._client.stream(method, url, **kwargs)

    async def _call(self, what: str, method: str, url: str, *, shield: bool = False, **kwargs: Any) -> Any:
        """One JSON call with retries; returns the parsed body of the 200."""
        attempt = 0
        started = self._clock.now()
        while True:
            attempt += 1
            passed = await self._gate.acquire()
            try:
                with anyio.CancelScope(shield=shield):
                    async with self._open(method, url, **kwargs) as response:
                        await self._check(response)
                        raw = await response.aread()
                try:
                    data = json.loads(raw)
                except ValueError as exc:
                    raise _Retry(Outcome(failure="truncated"), "unreadable response body") from exc
            except (_Retry, httpx2.TransportError) as exc:
                attempt -= not await self._backoff(what, passed, _as_retry(exc), attempt, started)
            except BaseException:
                self._gate.cancelled(passed)
                raise
            else:
                self._gate.succeeded(passed, Usage())
                return data

    async def _check(self, response: httpx2.Response) -> None:
        """Return on 200; raise _Retry for anything else (the policy then says retry, stop or refuse)."""
        self._gate.observe(None)
        if response.status_code == 200:
            return
        raw = await response.aread()
        outcome, detail = status_outcome(self.provider, response.status_code, response.headers, raw)
        reason = f"HTTP {response.status_code} {detail.error_type or ''}".rstrip() + f": {detail.message}"
        if detail.request_id:
            reason += f" (request-id {detail.request_id})"
        raise _Retry(outcome, reason)

    async def _backoff(self, what: str, passed: Pass, failed: _Retry, attempt: int, started: float) -> bool:
        """Raise when the policy gives up; else wait and say whether this attempt used up one of the call's
        attempts (a breaker's probe does not)."""
        outcome = replace(failed.outcome, elapsed=self._clock.now() - started)
        verdict = self._gate.failed(passed, outcome, attempt)
        decision = verdict.decision
        if decision.retry:
            await self._gate.back_off(verdict)
            return verdict.counts
        if decision.abort_run:
            hint = f" Check {self.key_variable}." if decision.kind == "authentication" else ""
            raise BatchApiError(f"could not {what}: {failed.message}.{hint}")
        if decision.kind == "invalid_request" and outcome.status is not None:
            raise BatchRejectedError(
                f"could not {what}: {failed.message}",
                status=outcome.status,
                error_type=outcome.error_type,
            )
        raise BatchApiError(f"could not {what} after {attempt} attempt(s) ({decision.reason}): {failed.message}")


def _epoch(stamp: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (`2024-08-20T18:37:24.100435Z`), or None."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _name(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def _as_retry(exc: _Retry | httpx2.TransportError) -> _Retry:
    if isinstance(exc, _Retry):
        return exc
    outcome, message = transport_outcome(exc)
    return _Retry(outcome, message)
