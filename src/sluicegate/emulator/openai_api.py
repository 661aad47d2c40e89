"""The emulator's OpenAI surface: `POST /v1/chat/completions`, JSON and data-only SSE, on the shared limiter.

Token count of a chat request: the emulator's documented rule (see `prompt.py`) applied to the request as is:
`messages` (system and developer turns included, each message 3 tokens of role framing plus 1 per content part)
and `tools` when given. The rate limiter is the same one as the Anthropic surface, with `max_completion_tokens`
(or the deprecated `max_tokens`, else `DEFAULT_MAX_TOKENS`) as the output reservation, as OpenAI reserves it.
The route speaks to the core through `ChatBackend` (`_openai_backend.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sluicegate.emulator import openai_format as fmt
from sluicegate.emulator import openai_validation as checks
from sluicegate.emulator._openai_backend import Admitted, ChatBackend, Completion, Throttled, core_backend
from sluicegate.emulator.config import FaultSpec
from sluicegate.emulator.prompt import count_tokens
from sluicegate.emulator.stats import leave_after
from sluicegate.emulator.transport import ClosingStreamingResponse, FastJSONResponse, abort_connection

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Admitted",
    "ChatBackend",
    "Completion",
    "Throttled",
    "batch_chat_completion",
    "core_backend",
    "openai_routes",
]

DEFAULT_MAX_TOKENS = 4096
_CHAT = "POST /v1/chat/completions"  # this route's name in the stats
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class _OpenAIError(Exception):
    """An error answered with the OpenAI body."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = fmt.error_body(message, type, code, param)
        self.headers = dict(headers or {})

    def response(self) -> FastJSONResponse:
        return FastJSONResponse(self.body, status_code=self.status, headers=self.headers)


def _bad(message: str, param: str | None = None, code: str | None = None) -> _OpenAIError:
    return _OpenAIError(400, message, "invalid_request_error", code, param)


def _api_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("api-key", "")


def _validate(body: Any) -> tuple[str, list[Mapping[str, Any]], int, list[str]]:
    """(model, messages, max_tokens, stop) of a valid body; raises the OpenAI 400 otherwise."""
    if not isinstance(body, Mapping):
        raise _bad("We could not parse the JSON body of your request.")
    extra = checks.unknown_field(body)
    if extra is not None:
        raise _bad(f"Unrecognized request argument supplied: {extra}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not messages:
        raise _bad("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            raise _bad(
                f"Invalid value for 'messages[{i}].role': expected one of system, developer, user, assistant, tool.",
                f"messages[{i}].role",
                "invalid_value",
            )
    raw_max = body.get("max_completion_tokens", body.get("max_tokens"))
    if raw_max is None:
        max_tokens = DEFAULT_MAX_TOKENS
    elif isinstance(raw_max, bool) or not isinstance(raw_max, int) or raw_max < 1:
        raise _bad(f"Invalid 'max_completion_tokens': integer below minimum value. Got {raw_max!r}.")
    else:
        max_tokens = raw_max
    out_of_range = checks.range_problem(body, model, max_tokens)
    if out_of_range is not None:
        raise _bad(*out_of_range)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    if len(stops) > 4:
        raise _bad("Invalid 'stop': array too long. Expected an array with maximum length 4.", "stop")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise _bad(f"Invalid 'n': must be between 1 and 128. Got {n!r}.", "n")
    stream_options = body.get("stream_options")
    if stream_options is not None and not body.get("stream"):
        raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    return model, messages, max_tokens, stops


def _pieces(text: str, parts: int) -> list[str]:
    """Split text into about `parts` deltas on word boundaries, so streamed deltas rebuild it exactly."""
    words = text.split(" ")
    if parts <= 1 or len(words) <= 1:
        return [text]
    size = max(1, -(-len(words) // parts))
    out = []
    for i in range(0, len(words), size):
        piece = " ".join(words[i : i + size])
        out.append(piece if i == 0 else " " + piece)
    return out


def openai_routes(state: EmulatorState, *, backend: ChatBackend | None = None) -> list[Route]:
    """The OpenAI-compatible routes of one emulator; `backend` defaults to the emulator core."""
    core = core_backend(state) if backend is None else backend

    async def chat_completions(request: Request) -> Response:
        counters = state.stats  # read per request: reset replaces it
        counters.enter()
        status = 0
        streaming = False
        try:
            response = await _respond(request)
            status = response.status_code
            if isinstance(response, StreamingResponse):
                response.body_iterator = leave_after(response.body_iterator, counters, status, _CHAT)
                streaming = True
            return response
        finally:
            if not streaming:
                counters.leave(status, _CHAT)

    async def _respond(request: Request) -> Response:
        try:
            return await _handle(request)
        except _OpenAIError as exc:
            response = exc.response()
            response.headers["x-request-id"] = "req_" + fmt.completion_id(core.rng)[9:]
            return response

    async def _early_fault(request: Request, fault: FaultSpec) -> Response | None:
        """Faults that replace the whole response, as OpenAI clients see them; None for later ones."""
        if fault.kind == "overloaded":
            raise _OpenAIError(503, "The engine is currently overloaded, please try again later.", "server_error")
        if fault.kind == "api_error":
            message = "The server had an error while processing your request. Sorry about that!"
            raise _OpenAIError(500, message, "server_error")
        if fault.kind == "unavailable":
            raise _OpenAIError(503, "The server is overloaded or not ready yet.", "server_error")
        if fault.kind == "reset":
            await abort_connection(request)
            return Response(status_code=500)
        if fault.kind == "hang":
            while not state.stopping and not await request.is_disconnected():  # noqa: ASYNC110
                await anyio.sleep(0.05)
            return Response(status_code=499)
        return None

    async def _handle(request: Request) -> Response:
        key = _api_key(request)
        if not key:
            raise _OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
        status = core.key_status(key)
        if status == "invalid":
            raise _OpenAIError(
                401,
                "Incorrect API key provided. You can find your API key in your account settings.",
                "invalid_request_error",
                "invalid_api_key",
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise _bad("We could not parse the JSON body of your request.") from None
        model, messages, max_tokens, stops = _validate(body)
        prompt = {"model": model, "messages": messages, "tools": body.get("tools") or []}
        prompt_tokens = count_tokens(prompt)
        too_long = checks.context_problem(model, prompt_tokens)
        if too_long is not None:
            raise _bad(*too_long)
        if status == "quota":
            # Retrying never helps; x-should-retry stops the SDK from trying anyway.
            raise _OpenAIError(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
                headers={"x-should-retry": "false"},
            )
        tier = "flex" if body.get("service_tier") == "flex" else "default"
        if tier == "flex" and core.rng.random() < state.config.flex_refusal:
            # Flex capacity is best effort: a refusal is a 429 (not billed); the exact body is UNCONFIRMED.
            raise _OpenAIError(
                429,
                "Resource unavailable: there is not enough flex processing capacity right now. Retry later or use "
                "the default service tier.",
                "resource_unavailable",
                "resource_unavailable",
            )
        fault = core.fault()
        fault_kind = fault.kind if fault is not None else None
        if fault is not None:
            early = await _early_fault(request, fault)
            if early is not None:
                return early
        stream = bool(body.get("stream"))
        include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
        n = int(body.get("n", 1))
        try:
            admission = core.admit(key, model, prompt_tokens, max_tokens * n)
        except Throttled as exc:
            kind = "tokens" if "token" in exc.bucket else "requests"
            raise _OpenAIError(
                429,
                f"Rate limit reached for {model} in organization org-emulator on {kind}. "
                f"Please try again in {exc.retry_after}s.",
                kind,
                "rate_limit_exceeded",
                headers={**exc.headers, "retry-after": str(exc.retry_after), "x-should-retry": "true"},
            ) from None
        cached_tokens, cache_commit = core.prompt_cache(key, prompt)
        gen = core.generate({"model": model, "messages": messages, "max_tokens": max_tokens, "stop_sequences": stops})
        finish = fmt.FINISH_REASONS.get(gen.stop_reason, "stop")
        completion_tokens = gen.output_tokens * n
        usage = fmt.usage_body(prompt_tokens, completion_tokens, cached_tokens)
        counters = state.stats
        # Same meaning as the Anthropic counters: input excludes the cached part, which counts as a read.
        counters.input_tokens += prompt_tokens - cached_tokens
        counters.cache_read_tokens += cached_tokens
        counters.output_tokens += completion_tokens
        ids: dict[str, Any] = {
            "id": fmt.completion_id(core.rng),
            "created": int(time.time()),
            "model": model,
            "fingerprint": "fp_e0a1b2c3d4",
        }
        headers = {**admission.headers(), "x-request-id": "req_" + fmt.completion_id(core.rng)[9:]}
        first, per_token = core.delays(gen.output_tokens)
        if tier == "flex":
            slowdown = state.config.flex_slowdown
            first, per_token = first * slowdown, per_token * slowdown
        if fault is not None and fault.kind == "slow":
            first += fault.delay
        if not stream:
            try:
                await anyio.sleep(first)
                cache_commit()
                await anyio.sleep(per_token * gen.output_tokens)
            finally:
                admission.finish(completion_tokens)
            out = fmt.completion_body(texts=[gen.text] * n, finish_reason=finish, usage=usage, service_tier=tier, **ids)
            return FastJSONResponse(out, headers=headers)

        async def events() -> AsyncIterator[bytes]:
            try:
                await anyio.sleep(first)
                cache_commit()
                role = [fmt.delta_choice(i, {"role": "assistant", "content": "", "refusal": None}) for i in range(n)]
                yield fmt.sse_data(fmt.chunk(choices=role, include_usage=include_usage, **ids))
                pieces = _pieces(gen.text, max(1, gen.output_tokens // 4))
                gap = per_token * gen.output_tokens / len(pieces)
                for i, piece in enumerate(pieces):
                    if fault_kind == "stream_error" and i >= len(pieces) // 2:
                        # A data chunk with an "error" key: the SDK raises APIError (not retried).
                        yield fmt.sse_data(
                            fmt.error_body("The server had an error while processing your request.", "server_error")
                        )
                        return
                    if fault_kind == "truncate" and i >= len(pieces) // 2:
                        await abort_connection(request)
                        return
                    await anyio.sleep(gap)
                    choices = [fmt.delta_choice(i, {"content": piece}) for i in range(n)]
                    yield fmt.sse_data(fmt.chunk(choices=choices, include_usage=include_usage, **ids))
                done = [fmt.delta_choice(i, {}, finish) for i in range(n)]
                yield fmt.sse_data(fmt.chunk(choices=done, include_usage=include_usage, **ids))
                if include_usage:
                    yield fmt.sse_data(fmt.chunk(choices=[], usage=usage, include_usage=True, **ids))
                yield fmt.sse_data("[DONE]")
            finally:
                admission.finish(completion_tokens)

        return ClosingStreamingResponse(events(), media_type="text/event-stream; charset=utf-8", headers=headers)

    return [Route("/v1/chat/completions", chat_completions, methods=["POST"])]


def batch_chat_completion(state: EmulatorState, body: Any, scope: str) -> tuple[int, dict[str, Any]]:
    """One request of an OpenAI batch through the chat simulation, with no rate limit, latency or fault:
    (HTTP status, response body) as the batch's output or error file records it. The prompt cache is the key's,
    read and then written at once (a batch request's answer is complete when it is recorded)."""
    core = core_backend(state)
    try:
        model, messages, max_tokens, stops = _validate(body)
        if body.get("stream"):
            raise _bad("Streaming is not supported in the Batch API.", "stream")
    except _OpenAIError as exc:
        return exc.status, exc.body
    n = int(body.get("n", 1))
    prompt = {"model": model, "messages": messages, "tools": body.get("tools") or []}
    prompt_tokens = count_tokens(prompt)
    too_long = checks.context_problem(model, prompt_tokens)
    if too_long is not None:
        refused = _bad(*too_long)
        return refused.status, refused.body
    cached_tokens, cache_commit = core.prompt_cache(scope, prompt)
    cache_commit()
    gen = core.generate({"model": model, "messages": messages, "max_tokens": max_tokens, "stop_sequences": stops})
    usage = fmt.usage_body(prompt_tokens, gen.output_tokens * n, cached_tokens)
    out = fmt.completion_body(
        id=fmt.completion_id(core.rng),
        created=int(time.time()),
        model=model,
        fingerprint="fp_e0a1b2c3d4",
        texts=[gen.text] * n,
        finish_reason=fmt.FINISH_REASONS.get(gen.stop_reason, "stop"),
        usage=usage,
    )
    return 200, out
