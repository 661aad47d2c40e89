"""One attempt (`_attempt.send_attempt`): whatever the wire does becomes a plain outcome, never an exception."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import anyio
import httpx2
import pytest

from sluicegate._attempt import AttemptResult, send_attempt
from sluicegate._config import Timeouts
from sluicegate._wire import Wire
from sluicegate.providers.anthropic import AnthropicProvider

pytestmark = pytest.mark.anyio

MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 2},
}


class _Chunks(httpx2.AsyncByteStream):
    """A response body that arrives as a network stream does, one chunk at a time."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def _sse(*events: tuple[str, dict[str, Any]]) -> httpx2.Response:
    """A 200 event stream of `events`, one chunk per event."""
    chunks = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks))


_START = ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}})
_BLOCK = ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
_DELTA = (
    "content_block_delta",
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello"}},
)

_END = (
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


async def _attempt(
    handler: Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]],
    *,
    stream: bool = False,
    total_timeout: float = 10.0,
    on_text: Callable[[str], Awaitable[None]] | None = None,
) -> AttemptResult:
    wire = Wire(httpx2.MockTransport(handler), headers={"x-api-key": "k"}, timeouts=Timeouts())
    try:
        return await send_attempt(
            wire,
            AnthropicProvider(),
            url="http://test/v1/messages",
            body={"model": "m", "max_tokens": 5, "messages": [], "stream": stream},
            stream=stream,
            total_timeout=total_timeout,
            on_text=on_text,
        )
    finally:
        await wire.aclose()


async def test_a_json_answer_gives_the_message_and_its_usage() -> None:
    """A 200 JSON body becomes the message and its usage; the server answered, so the probe may end."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=MESSAGE)

    out = await _attempt(handler)
    assert out.failure is None
    assert out.message is not None
    assert out.message["content"][0]["text"] == "hello"
    assert out.usage is not None
    assert (out.usage.input_tokens, out.usage.output_tokens) == (3, 2)
    assert out.responded


async def test_an_error_status_keeps_what_the_retry_policy_needs() -> None:
    """A 429 carries its status, the API's error type, x-should-retry and retry-after into the outcome."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        return httpx2.Response(429, json=body, headers={"retry-after": "7", "x-should-retry": "true"})

    out = await _attempt(handler)
    assert out.failure is not None
    assert (out.failure.failure, out.failure.status, out.failure.error_type) == ("status", 429, "rate_limit_error")
    assert (out.failure.should_retry, out.failure.retry_after) == (True, 7.0)
    assert out.detail is not None
    assert out.detail.message == "slow down"
    assert out.message is None


async def test_a_refused_connection_is_a_connect_failure() -> None:
    """A connection that cannot be opened is a "connect" outcome, and the server never answered."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    out = await _attempt(handler)
    assert out.failure is not None
    assert out.failure.failure == "connect"
    assert not out.responded


async def test_a_200_that_is_not_json_is_a_truncated_answer() -> None:
    """A cut or garbled 200 body is retried as "truncated", not raised."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b'{"id": "msg_01", "conte')

    out = await _attempt(handler)
    assert out.failure is not None
    assert out.failure.failure == "truncated"


async def test_a_whole_stream_rebuilds_the_message() -> None:
    """A complete event stream gives the same message and usage as the JSON answer, its text handed on."""
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return _sse(_START, _BLOCK, _DELTA, *_END)

    out = await _attempt(handler, stream=True, on_text=on_text)
    assert out.failure is None
    assert out.message is not None
    assert out.message["content"] == [{"type": "text", "text": "hello"}]
    assert out.usage is not None
    assert out.usage.output_tokens == 2
    assert seen == ["hello"]


async def test_a_stream_without_its_final_event_is_truncated_after_text_was_sent() -> None:
    """A stream that ends before message_stop is "truncated"; text already handed on marks it as not replayable."""
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return _sse(_START, _BLOCK, _DELTA)

    out = await _attempt(handler, stream=True, on_text=on_text)
    assert out.failure is not None
    assert out.failure.failure == "truncated"
    assert seen == ["hello"]
    assert out.text_sent


async def test_an_error_event_mid_stream_is_judged_as_its_status() -> None:
    """An overloaded_error event inside a 200 stream is judged as the 529 it stands for."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        error = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        return _sse(_START, _BLOCK, error)

    out = await _attempt(handler, stream=True)
    assert out.failure is not None
    assert (out.failure.failure, out.failure.status, out.failure.error_type) == ("status", 529, "overloaded_error")


async def test_an_attempt_past_its_total_timeout_is_a_timeout() -> None:
    """A server that never answers ends the attempt at its total timeout as a "timeout" outcome."""
    never = anyio.Event()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        await never.wait()
        raise AssertionError("unreachable")

    out = await _attempt(handler, total_timeout=0.05)
    assert out.failure is not None
    assert out.failure.failure == "timeout"


async def test_a_streamed_answer_reports_its_input_count_at_its_first_event() -> None:
    """`on_input_counted` gets message_start's input count as soon as that first event is read: after the
    headers, before the rest of the answer."""
    log: list[str] = []

    class _Logged(_Chunks):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for i, chunk in enumerate(self._chunks):
                log.append(f"chunk {i}")
                yield chunk

    async def handler(request: httpx2.Request) -> httpx2.Response:
        events = (_START, _BLOCK, _DELTA, *_END)
        chunks = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
        headers = {
            "content-type": "text/event-stream",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
        }
        return httpx2.Response(200, headers=headers, stream=_Logged(chunks))

    wire = Wire(httpx2.MockTransport(handler), headers={"x-api-key": "k"}, timeouts=Timeouts())
    try:
        out = await send_attempt(
            wire,
            AnthropicProvider(),
            url="http://test/v1/messages",
            body={"model": "m", "max_tokens": 5, "messages": [], "stream": True},
            stream=True,
            total_timeout=10.0,
            on_headers=lambda snapshot: log.append("headers"),
            on_input_counted=lambda tokens: log.append(f"counted {tokens}"),
        )
    finally:
        await wire.aclose()
    assert log[:4] == ["headers", "chunk 0", "counted 3", "chunk 1"]
    assert out.input_counted
    assert out.failure is None
