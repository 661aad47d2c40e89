"""The Anthropic Messages endpoints: /v1/messages (JSON and SSE) and /v1/messages/count_tokens.

The Message body itself (usage, id, content; `complete_message` for batches) is built in `_message_body.py`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sluicegate.emulator import content, latency
from sluicegate.emulator._message_body import _input_usage, _message, _msg_id, _usage
from sluicegate.emulator._message_body import complete_message as complete_message  # batches import it here
from sluicegate.emulator.caching import CacheControlError, CachePlan, breakpoints
from sluicegate.emulator.config import COUNT_TOKENS_RPM, FaultSpec
from sluicegate.emulator.errors import ApiError
from sluicegate.emulator.faults import TruncatedJSONResponse, pick_fault
from sluicegate.emulator.organization import HEADER as ORG_HEADER
from sluicegate.emulator.organization import organization_id
from sluicegate.emulator.prompt import count_tokens, prompt_blocks
from sluicegate.emulator.ratelimit import Charge, RateLimited
from sluicegate.emulator.stats import leave_after
from sluicegate.emulator.transport import ClosingStreamingResponse, FastJSONResponse, abort_connection
from sluicegate.emulator.validation import check_prompt_size, validate_message_params

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

_SPEND_CAP_MESSAGE = (
    "You have reached your API usage limits: your organization's monthly spend limit is exhausted. "
    "You will regain access on 2026-12-01 at 00:00 UTC."
)
_LIMIT_NAMES = {"requests": "requests", "input_tokens": "input tokens", "output_tokens": "output tokens"}
COUNT_TOKENS = "POST /v1/messages/count_tokens"  # that route's name in the stats


def rate_limit_message(org: str, limit: int, bucket: str) -> str:
    """The API's 429 text for a per-minute limit of the organization `org` (api-fidelity section 2)."""
    return (
        f"This request would exceed the rate limit for your organization ({org}) of {limit:,} "
        f"{_LIMIT_NAMES[bucket]} per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
        "You can see the response headers for current usage. Please reduce the prompt length or the maximum "
        "tokens requested, or try again later. You may also contact sales at "
        "https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."
    )


def request_id(state: EmulatorState) -> str:
    """A seeded `req_...` id."""
    return "req_011" + format(state.rng.getrandbits(96), "024x")


def api_key(request: Request) -> str | None:
    """The key from x-api-key or an Authorization bearer."""
    key = request.headers.get("x-api-key")
    if not key:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    return key or None


def org_of(state: EmulatorState, key: str | None) -> str | None:
    """The organization id of an accepted key; None without a key or for a key configured as invalid."""
    if key is None or key in state.config.invalid_keys:
        return None
    return organization_id(key)


def check_key(state: EmulatorState, key: str | None) -> None:
    """401 without a key or with a key configured as invalid."""
    if key is None:
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    if key in state.config.invalid_keys:
        raise ApiError(401, "authentication_error", "invalid x-api-key")


def check_version(state: EmulatorState, request: Request) -> None:
    """400 without the anthropic-version header (the SDKs always send it; raw clients must too)."""
    if state.config.require_version and not request.headers.get("anthropic-version"):
        raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")


# json.dumps(data, separators=(",", ":")) without building an encoder per event.
_SSE_JSON = json.JSONEncoder(separators=(",", ":"))


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {_SSE_JSON.encode(data)}\n\n".encode()


def _pieces(text: str, n: int) -> list[str]:
    """Split `text` into about `n` word-aligned deltas."""
    words = text.split(" ")
    n = max(1, min(n, len(words)))
    size = -(-len(words) // n)
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [c + (" " if i < len(chunks) - 1 else "") for i, c in enumerate(chunks)]


def error_response(exc: ApiError, rid: str, org: str | None = None) -> FastJSONResponse:
    """The Anthropic error response for `exc`: its body, request-id, the key's organization id (when the key
    was accepted), and x-should-retry as the API sends it."""
    headers = {"request-id": rid, **exc.headers}
    if org is not None:
        headers[ORG_HEADER] = org
    if exc.status in (408, 409, 429) or exc.status >= 500:
        headers.setdefault("x-should-retry", "true")
    return FastJSONResponse(exc.anthropic_body(rid), status_code=exc.status, headers=headers)


class MessagesHandler:
    """Simulates one /v1/messages call: auth, validation, faults, limits, latency, content."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def error(self, exc: ApiError, rid: str, org: str | None = None) -> FastJSONResponse:
        """The Anthropic error response for `exc`."""
        return error_response(exc, rid, org)

    async def handle(self, request: Request) -> Response:
        stats = self.state.stats
        stats.enter()
        status = 0
        streaming = False
        try:
            response = await self._handle(request)
            status = response.status_code
            if isinstance(response, StreamingResponse):
                # A stream is in flight until its last event, not until its headers are sent.
                response.body_iterator = leave_after(response.body_iterator, stats, status)
                streaming = True
            return response
        finally:
            if not streaming:
                stats.leave(status)

    async def _handle(self, request: Request) -> Response:
        state = self.state
        rid = request_id(state)
        key = api_key(request)
        org = org_of(state, key)
        try:
            return await self._respond(request, rid, key, org)
        except ApiError as exc:
            return self.error(exc, rid, org)

    async def _respond(self, request: Request, rid: str, key: str | None, org: str | None) -> Response:
        state = self.state
        check_key(state, key)
        assert key is not None
        assert org is not None  # check_key refused the keys without one
        check_version(state, request)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > state.config.max_body_bytes:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        raw = await request.body()
        if len(raw) > state.config.max_body_bytes:
            raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        try:
            params = json.loads(raw)
        except ValueError:
            raise ApiError(
                400, "invalid_request_error", "There was an issue with your request body: invalid JSON"
            ) from None
        model = validate_message_params(params, state.config)
        fault = pick_fault(state)
        if fault is not None:
            state.stats.faults[fault.kind] += 1
            early = await self._early_fault(request, fault)
            if early is not None:
                return early
        if state.config.spend_cap:
            exc = ApiError(429, "rate_limit_error", _SPEND_CAP_MESSAGE)
            exc.details = {"error_code": "enforced_spend_limit_reached"}
            headers = {"request-id": rid, ORG_HEADER: org}
            return FastJSONResponse(exc.anthropic_body(rid), status_code=429, headers=headers)
        input_usage, limited_tokens, plan = _input_usage(state, params, model, key)
        check_prompt_size(
            sum(input_usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        )
        try:
            admission = state.limits.admit(key, model, limited_tokens, int(params["max_tokens"]))
        except RateLimited as exc:
            rpm = state.limits.buckets(key, model)
            cap = {"requests": rpm.requests, "input_tokens": rpm.input, "output_tokens": rpm.output}[exc.bucket]
            message = rate_limit_message(org, int(cap.capacity), exc.bucket)
            headers = {**exc.headers, "retry-after": str(exc.retry_after)}
            raise ApiError(429, "rate_limit_error", message, headers) from None
        gen = content.generate(state, params)
        state.stats.input_tokens += input_usage["input_tokens"]
        state.stats.cache_read_tokens += input_usage["cache_read_input_tokens"]
        state.stats.cache_write_tokens += input_usage["cache_creation_input_tokens"]
        first, per = latency.first_token(state), latency.per_token(state)
        if fault is not None and fault.kind == "slow":
            first += fault.delay
        if params.get("stream"):
            return self._stream(request, rid, org, model, params, gen, input_usage, plan, admission, first, per, fault)
        # The cache entry becomes readable when the answer starts (first token), not when the body is complete.
        if first:
            await anyio.sleep(first)
        if plan is not None:
            state.cache.commit(plan, state.emulated_now())
        if per:
            await anyio.sleep(per * gen.output_tokens)
        admission.finish(gen.output_tokens)
        state.stats.output_tokens += gen.output_tokens
        usage = _usage(input_usage, gen.output_tokens, "standard")
        body = _message(_msg_id(state), model, gen.text, gen.stop_reason, gen.stop_sequence, usage)
        headers = {**admission.headers(), "request-id": rid, ORG_HEADER: org}
        # The stream faults on the non-streaming path: an error after the work (as the API reports a failure
        # mid-generation to a non-streaming caller), or the answer cut off mid-body.
        if fault is not None and fault.kind == "stream_error":
            raise ApiError(500, "api_error", "Internal server error")
        if fault is not None and fault.kind == "truncate":
            return TruncatedJSONResponse(body, headers)
        return FastJSONResponse(body, headers=headers)

    async def _early_fault(self, request: Request, fault: FaultSpec) -> Response | None:
        """Faults that replace the whole response; None for faults applied later."""
        if fault.kind == "overloaded":
            raise ApiError(529, "overloaded_error", "Overloaded")
        if fault.kind == "api_error":
            raise ApiError(500, "api_error", "Internal server error")
        if fault.kind == "unavailable":
            raise ApiError(503, "api_error", "Service unavailable")
        if fault.kind == "reset":
            await abort_connection(request)
            return Response(status_code=500)
        if fault.kind == "hang":
            # Poll: one condition is set from another thread, the other needs a receive() probe.
            while not self.state.stopping and not await request.is_disconnected():  # noqa: ASYNC110
                await anyio.sleep(0.05)
            return Response(status_code=499)
        return None

    def _stream(
        self,
        request: Request,
        rid: str,
        org: str,
        model: str,
        params: Mapping[str, Any],
        gen: content.Generated,
        input_usage: dict[str, Any],
        plan: CachePlan | None,
        admission: Charge,
        first: float,
        per: float,
        fault: FaultSpec | None,
    ) -> Response:
        state = self.state
        kind = fault.kind if fault is not None else None

        produced = [0]  # output tokens already streamed, for a client that hangs up mid-answer

        async def events() -> AsyncIterator[bytes]:
            try:
                async with aclosing(answer()) as chunks:
                    async for chunk in chunks:
                        yield chunk
            finally:
                # Idempotent: the normal end and the fault paths settle first; a disconnect settles here,
                # so a reservation is never leaked and streamed output is charged.
                admission.finish(produced[0])

        async def answer() -> AsyncGenerator[bytes, None]:
            if first:
                await anyio.sleep(first)
            if plan is not None:
                state.cache.commit(plan, state.emulated_now())
            start = _message(_msg_id(state), model, "", None, None, _usage(input_usage, 1, "standard"))
            start["content"] = []
            yield _sse("message_start", {"type": "message_start", "message": start})
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            yield _sse("ping", {"type": "ping"})
            pieces = _pieces(gen.text, max(1, gen.output_tokens // 4))
            step = per * gen.output_tokens / len(pieces)
            for i, piece in enumerate(pieces):
                if i and kind == "stream_error" and i >= len(pieces) // 2:
                    admission.finish(0)
                    err = ApiError(529, "overloaded_error", "Overloaded").anthropic_body(rid)
                    yield _sse("error", err)
                    return
                if i and kind == "truncate" and i >= len(pieces) // 2:
                    admission.finish(0)
                    await abort_connection(request)
                    return
                if step:
                    await anyio.sleep(step)
                delta = {"type": "text_delta", "text": piece}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
                produced[0] = gen.output_tokens * (i + 1) // len(pieces)
            if kind == "stream_error":
                admission.finish(0)
                yield _sse("error", ApiError(529, "overloaded_error", "Overloaded").anthropic_body(rid))
                return
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            admission.finish(gen.output_tokens)
            state.stats.output_tokens += gen.output_tokens
            final_usage = {**input_usage, "output_tokens": gen.output_tokens}
            final_usage.pop("cache_creation", None)
            stop: dict[str, Any] = {"stop_reason": gen.stop_reason, "stop_sequence": gen.stop_sequence}
            yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
            yield _sse("message_stop", {"type": "message_stop"})

        headers = {**admission.headers(), "request-id": rid, ORG_HEADER: org, "cache-control": "no-cache"}
        return ClosingStreamingResponse(events(), media_type="text/event-stream", headers=headers)


class CountTokensHandler:
    """/v1/messages/count_tokens: the same rule as usage and the buckets."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, request: Request) -> Response:
        response = await self._handle(request)
        self.state.stats.count(COUNT_TOKENS, response.status_code)
        return response

    async def _handle(self, request: Request) -> Response:
        state = self.state
        rid = request_id(state)
        key = api_key(request)
        org = org_of(state, key)
        try:
            check_key(state, key)
            assert key is not None
            assert org is not None  # check_key refused the keys without one
            check_version(state, request)
            try:
                state.limits.admit_count(key)
            except RateLimited as exc:
                rpm = state.config.count_tokens_rpm or COUNT_TOKENS_RPM.get(state.config.tier, COUNT_TOKENS_RPM[4])
                message = f"This request would exceed the rate limit for token counting of {rpm:,} requests per minute."
                raise ApiError(429, "rate_limit_error", message, {"retry-after": str(exc.retry_after)}) from None
            try:
                params = json.loads(await request.body())
            except ValueError:
                raise ApiError(400, "invalid_request_error", "invalid JSON") from None
            if isinstance(params, dict):
                params.setdefault("max_tokens", 1)
            validate_message_params(params, state.config)
            try:
                # Accepted and validated as on /v1/messages, but nothing is cached.
                blocks = prompt_blocks(params, keyed=False)
                breakpoints(params, blocks)
            except CacheControlError as exc:
                raise ApiError(400, "invalid_request_error", str(exc)) from None
            headers = {"request-id": rid, ORG_HEADER: org}
            return FastJSONResponse({"input_tokens": count_tokens(params, blocks)}, headers=headers)
        except ApiError as exc:
            return error_response(exc, rid, org)
