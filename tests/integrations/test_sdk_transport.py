"""LimitedTransport logic on the fake clock: retries, waits, refusals and stream metering, under the real SDK."""

from __future__ import annotations

import asyncio
import gc
import json
import random
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from sluicegate import Limits, RetryPolicy
from sluicegate.integrations.sdk import LimitedTransport
from sluicegate.testing import FakeClock

Reply = Callable[[int, httpx2.Request], httpx2.Response]
PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def _message(output_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": output_tokens},
    }


def _error(status: int, error_type: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"type": "error", "error": {"type": error_type, "message": f"scripted {error_type}"}}
    return httpx2.Response(status, json=body, headers=headers)


def _sse(*, complete: bool = True, error: bool = False) -> bytes:
    message = _message() | {"content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hel"}},
        ),
    ]
    if error:
        events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    elif complete:
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _key(request: httpx2.Request) -> str:
    """The API key, however this SDK version sends it (x-api-key or a bearer token)."""
    return request.headers.get("x-api-key") or request.headers["authorization"].removeprefix("Bearer ")


class Script:
    """A scripted server: `reply(n, request)` answers the n-th generation request; counts what it saw."""

    def __init__(self, reply: Reply, path: str = "/v1/messages") -> None:
        self.reply = reply
        self.path = path
        self.generations = 0
        self.other = 0
        self.keys: list[str] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path != self.path:
            self.other += 1
            return httpx2.Response(200, json={"data": [], "has_more": False, "first_id": None, "last_id": None})
        self.generations += 1
        self.keys.append(_key(request))
        return self.reply(self.generations, request)


def _transport(script: Script, clock: FakeClock, **kwargs: Any) -> LimitedTransport:
    return LimitedTransport(
        provider="anthropic", transport=httpx2.MockTransport(script.handle), clock=clock, seed=7, **kwargs
    )


def _client(transport: LimitedTransport, key: str = "k") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://api.test", api_key=key, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )


def test_overloaded_is_retried_after_its_retry_after() -> None:
    """A 529 with retry-after: 2 is retried after exactly 2 s; the SDK gets the message."""
    clock = FakeClock()
    script = Script(
        lambda n, _: (
            _error(529, "overloaded_error", {"retry-after": "2"}) if n == 1 else httpx2.Response(200, json=_message())
        )
    )
    transport = _transport(script, clock)

    async def main() -> None:
        message = await _client(transport).messages.create(**PARAMS)
        assert message.usage.output_tokens == 7
        assert clock.now() == 2.0

    clock.run(main)
    assert script.generations == 2
    assert transport.failures["overloaded"] == 1


def test_server_error_backs_off_with_full_jitter() -> None:
    """A 500 without retry-after waits the policy's first jittered backoff, drawn from the seeded generator."""
    clock = FakeClock()
    script = Script(lambda n, _: _error(500, "api_error") if n == 1 else httpx2.Response(200, json=_message()))
    transport = _transport(script, clock, retry=RetryPolicy(initial_delay=4.0))
    expected = random.Random(7).uniform(0.0, 4.0)

    async def main() -> None:
        await _client(transport).messages.create(**PARAMS)
        assert clock.now() == expected

    clock.run(main)
    assert script.generations == 2


def test_rate_limited_pauses_everyone_for_retry_after() -> None:
    """A 429 with retry-after: 3 cools the limiter down 3 s (plus seeded jitter), then the request succeeds."""
    clock = FakeClock()
    script = Script(
        lambda n, _: (
            _error(429, "rate_limit_error", {"retry-after": "3"}) if n == 1 else httpx2.Response(200, json=_message())
        )
    )
    transport = _transport(script, clock)
    jitter = random.Random(7).uniform(0.0, 0.3)

    async def main() -> None:
        await _client(transport).messages.create(**PARAMS)
        assert clock.now() == 3.0 + jitter

    clock.run(main)
    assert script.generations == 2
    assert transport.failures["rate_limited"] == 1


def test_connection_error_is_retried() -> None:
    """A refused connection is retried by the transport; the SDK never sees it."""
    clock = FakeClock()

    def reply(n: int, request: httpx2.Request) -> httpx2.Response:
        if n == 1:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, json=_message())

    script = Script(reply)
    transport = _transport(script, clock)

    async def main() -> None:
        message = await _client(transport).messages.create(**PARAMS)
        assert message.content[0].type == "text"

    clock.run(main)
    assert script.generations == 2
    assert transport.failures["connect"] == 1


def test_bad_request_is_returned_at_once_and_marked_final() -> None:
    """A 400 is not retried: the SDK raises BadRequestError and the response says x-should-retry: false."""
    clock = FakeClock()
    script = Script(lambda n, _: _error(400, "invalid_request_error"))
    transport = _transport(script, clock)

    async def main() -> None:
        with pytest.raises(anthropic.BadRequestError) as info:
            await _client(transport).messages.create(**PARAMS)
        assert info.value.response.headers["x-should-retry"] == "false"
        assert info.value.body == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "scripted invalid_request_error"},
        }

    clock.run(main)
    assert script.generations == 1
    assert transport.statistics().in_flight == 0


def test_exhausted_retries_return_the_last_failure() -> None:
    """With max_attempts=3 and a server that always answers 529, the SDK raises after exactly 3 attempts."""
    clock = FakeClock()
    script = Script(lambda n, _: _error(529, "overloaded_error", {"retry-after": "1"}))
    transport = _transport(script, clock, retry=RetryPolicy(max_attempts=3))

    async def main() -> None:
        with pytest.raises(anthropic.APIStatusError) as info:
            await _client(transport).messages.create(**PARAMS)
        assert info.value.status_code == 529
        assert clock.now() == 2.0

    clock.run(main)
    assert script.generations == 3


def test_spend_cap_refuses_that_key_but_not_others() -> None:
    """A billing 429 stops the key: later calls are refused without sending; another key still works."""
    clock = FakeClock()

    def reply(n: int, request: httpx2.Request) -> httpx2.Response:
        if _key(request) == "capped":
            return _error(429, "billing_error")
        return httpx2.Response(200, json=_message())

    script = Script(reply)
    transport = _transport(script, clock)

    async def main() -> None:
        capped = _client(transport, key="capped")
        for _ in range(3):
            with pytest.raises(anthropic.RateLimitError):
                await capped.messages.create(**PARAMS)
        with pytest.raises(anthropic.RateLimitError) as info:
            await capped.messages.create(**PARAMS)
        assert info.value.response.headers["x-sluicegate-refused"] == "true"
        assert (await _client(transport, key="fine").messages.create(**PARAMS)).usage.output_tokens == 7

    clock.run(main)
    assert script.keys == ["capped", "fine"]


def test_given_limits_pace_requests_on_the_clock() -> None:
    """With 60 RPM given and a 1 s initial burst, the third sequential request is admitted at t = 2 s."""
    clock = FakeClock()
    script = Script(lambda n, _: httpx2.Response(200, json=_message()))
    transport = _transport(script, clock, limits=Limits(requests_per_minute=60))

    async def main() -> None:
        client = _client(transport)
        for _ in range(3):
            await client.messages.create(**PARAMS)
        assert clock.now() == 2.0

    clock.run(main)
    assert script.generations == 3


def test_other_endpoints_bypass_the_limiter() -> None:
    """models.list goes straight to the server without a permit."""
    clock = FakeClock()
    script = Script(lambda n, _: httpx2.Response(200, json=_message()))
    transport = _transport(script, clock)

    async def main() -> None:
        await _client(transport).models.list()

    clock.run(main)
    assert (script.other, script.generations, transport.attempts) == (1, 0, 0)


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        pytest.param(_sse(), "complete", id="complete"),
        pytest.param(_sse(complete=False), "cut", id="cut"),
        pytest.param(_sse(error=True), "error", id="error-event"),
    ],
)
def test_streams_pass_bytes_through_and_free_the_permit(body: bytes, outcome: str) -> None:
    """The SDK reads the SSE bytes unchanged; complete, cut and errored streams all free their permit."""
    clock = FakeClock()
    headers = {"content-type": "text/event-stream"}
    script = Script(lambda n, _: httpx2.Response(200, headers=headers, content=body))
    transport = _transport(script, clock)

    async def main() -> list[str]:
        kinds: list[str] = []
        stream = await _client(transport).messages.create(**PARAMS, stream=True)
        try:
            async for event in stream:
                kinds.append(event.type)
        except anthropic.APIStatusError:
            kinds.append("raised")
        return kinds

    kinds = clock.run(main)
    assert transport.statistics().in_flight == 0
    if outcome == "complete":
        assert kinds[-1] == "message_stop"
        assert transport.failures.total() == 0
    elif outcome == "cut":
        assert kinds[-1] == "content_block_delta"
    else:
        assert kinds[-1] == "raised"
        assert transport.failures["overloaded"] == 1  # the same reason names as a non-streamed 529


def test_stream_closed_early_frees_the_permit() -> None:
    """Leaving a stream after its first event and closing it settles the permit."""
    clock = FakeClock()
    headers = {"content-type": "text/event-stream"}
    script = Script(lambda n, _: httpx2.Response(200, headers=headers, content=_sse()))
    transport = _transport(script, clock)

    async def main() -> None:
        stream = await _client(transport).messages.create(**PARAMS, stream=True)
        async for _ in stream:
            break
        assert transport.statistics().in_flight == 1
        await stream.close()

    clock.run(main)
    assert transport.statistics().in_flight == 0


def test_stream_abandoned_without_close_frees_the_permit_once_dropped() -> None:
    """A stream the caller drops unread and unclosed gives its permit back when it is collected.

    Python finalizes the abandoned async generators on the loop, which ends the metered body; without this a
    forgotten stream in a long-running service would hold a concurrency slot for ever.
    """
    clock = FakeClock()
    headers = {"content-type": "text/event-stream"}
    script = Script(lambda n, _: httpx2.Response(200, headers=headers, content=_sse()))
    transport = _transport(script, clock)
    seen: list[int] = []

    async def leave_one_open() -> None:
        stream = await _client(transport).messages.create(**PARAMS, stream=True)
        async for _ in stream:
            break
        seen.append(transport.statistics().in_flight)

    async def main() -> None:
        await leave_one_open()
        gc.collect()
        for _ in range(10):  # the loop runs the generators' aclose() a few callbacks later
            await asyncio.sleep(0)
        seen.append(transport.statistics().in_flight)

    clock.run(main)
    assert seen == [1, 0]


def _openai_client(script: Script, clock: FakeClock) -> tuple[openai.AsyncOpenAI, LimitedTransport]:
    transport = LimitedTransport(provider="openai", transport=httpx2.MockTransport(script.handle), clock=clock, seed=7)
    client = openai.AsyncOpenAI(
        base_url="http://api.test/v1", api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    return client, transport


CHAT_PATH = "/v1/chat/completions"
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def test_openai_bad_key_is_refused_after_one_request() -> None:
    """An OpenAI 401 raises AuthenticationError; the next call with that key is refused without being sent."""
    clock = FakeClock()
    body = {
        "error": {
            "message": "Incorrect API key provided",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    script = Script(lambda n, _: httpx2.Response(401, json=body), path=CHAT_PATH)
    client, _ = _openai_client(script, clock)

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(**CHAT)

    clock.run(main)
    assert script.generations == 1


def test_openai_stream_without_usage_frees_the_permit() -> None:
    """A chat stream without include_usage reports no usage; the permit is settled with the estimate."""
    clock = FakeClock()
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    pieces = [
        chunk | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hey"}, "finish_reason": None}]},
        chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    sse = b"".join(f"data: {json.dumps(p)}\n\n".encode() for p in pieces) + b"data: [DONE]\n\n"
    script = Script(
        lambda n, _: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse), path=CHAT_PATH
    )
    client, transport = _openai_client(script, clock)

    async def main() -> str:
        stream = await client.chat.completions.create(**CHAT, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert clock.run(main) == "hey"
    assert transport.statistics().in_flight == 0
    assert transport.attempts == 1


@pytest.mark.parametrize(("body", "usage"), [(_sse(), (5, 9)), (_sse(complete=False), None)], ids=["complete", "cut"])
def test_a_relay_reads_the_streams_usage_from_the_meter(body: bytes, usage: tuple[int, int] | None) -> None:
    """The response's `sluicegate.meter` extension holds what the transport read while the bytes passed (usage,
    input so far, text size), so a relay such as the gateway never decodes the events a second time."""
    clock = FakeClock()
    script = Script(lambda n, _: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    transport = _transport(script, clock)

    async def main() -> tuple[bytes, Any]:
        async with httpx2.AsyncClient(transport=transport) as http:
            request = http.build_request(
                "POST", "http://api.test/v1/messages", json=PARAMS | {"stream": True}, headers={"x-api-key": "k"}
            )
            response = await http.send(request, stream=True)
            relayed = b"".join([chunk async for chunk in response.aiter_raw()])
            await response.aclose()
            return relayed, response.extensions["sluicegate.meter"]

    relayed, meter = clock.run(main)
    assert relayed == body  # passed through untouched
    reported = meter.reported()
    assert (None if reported is None else (reported.input_tokens, reported.output_tokens)) == usage
    assert meter.usage().input_tokens == 5  # from message_start, even when the stream was cut
    # Sized, not parsed: the delta's length less a compact JSON frame (this one has spaces after its separators).
    assert len("hel") <= meter.text_chars <= len("hel") + 10
