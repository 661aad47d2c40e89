"""The SDK transport's streamed probe on the fake clock: the first unstreamed request streams, comes back whole."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import anyio.lowlevel
import httpx2

from sluicegate import RetryPolicy
from sluicegate.integrations._probe import ProbeAssembly
from sluicegate.integrations.sdk import LimitedTransport
from sluicegate.testing import FakeClock

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}
SSE = {"content-type": "text/event-stream", "request-id": "req_probe"}


def _events(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def _start(**usage: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1, **usage},
    }  # fmt: skip
    return {"type": "message_start", "message": message}


def _delta(index: int, **delta: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _end(output_tokens: int = 9) -> list[dict[str, Any]]:
    return [
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": output_tokens}},
        {"type": "message_stop"},
    ]  # fmt: skip


def _text_stream(text: str = "hello") -> bytes:
    return _events(
        _start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        _delta(0, type="text_delta", text=text[:2]),
        _delta(0, type="text_delta", text=text[2:]),
        {"type": "content_block_stop", "index": 0},
        *_end(),
    )


def _json_message(text: str = "hello") -> dict[str, Any]:
    message = _start()["message"] | {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
    return message | {"usage": {"input_tokens": 5, "output_tokens": 9}}


class Server:
    """Answers a streamed request with `streamed` (in turn), an unstreamed one with a JSON Message; logs both."""

    def __init__(self, *streamed: httpx2.Response) -> None:
        self.streamed = list(streamed)
        self.log: list[bool] = []  # per generation request: was it streamed

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        stream = json.loads(request.content).get("stream") is True
        self.log.append(stream)
        if stream:
            return self.streamed.pop(0)
        return httpx2.Response(200, json=_json_message(), headers={"request-id": "req_plain"})


def _run(server: Server, calls: int = 1, **kwargs: Any) -> tuple[list[Any], LimitedTransport]:
    clock = FakeClock()
    transport = LimitedTransport(
        provider="anthropic", transport=httpx2.MockTransport(server.handle), clock=clock, seed=3, **kwargs
    )
    client = anthropic.AsyncAnthropic(
        base_url="http://api.test", api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )

    async def main() -> list[Any]:
        out: list[Any] = []
        for _ in range(calls):
            try:
                raw = await client.messages.with_raw_response.create(**PARAMS)
                out.append((await raw.parse(), raw.http_response))
            except anthropic.APIStatusError as exc:
                out.append(exc)
        return out

    return clock.run(main), transport


def test_first_unstreamed_request_is_sent_streamed_and_returned_whole() -> None:
    """The probe goes out with stream: true; the SDK gets the Message an unstreamed call returns, headers kept."""
    server = Server(httpx2.Response(200, headers=SSE, content=_text_stream()))
    ((first, response), (second, _)), transport = _run(server, calls=2)
    assert server.log == [True, False]  # only the probe streams
    assert first.model_dump() == anthropic.types.Message.model_validate(_json_message()).model_dump()
    assert response.headers["request-id"] == "req_probe"
    assert response.headers["content-type"] == "application/json"
    assert second.content[0].text == "hello"
    assert transport.statistics().in_flight == 0
    assert transport.attempts == 2


def test_error_event_in_the_probe_is_retried_unstreamed() -> None:
    """An overloaded_error mid-probe counts as a 529: retried (now unstreamed, the server has answered)."""
    broken = _events(_start(), {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    server = Server(httpx2.Response(200, headers=SSE, content=broken))
    (raw,), transport = _run(server, retry=RetryPolicy(initial_delay=0.1, max_delay=0.2))
    assert server.log == [True, False]
    assert raw[0].content[0].text == "hello"
    assert transport.failures["overloaded"] == 1
    assert transport.statistics().in_flight == 0


def test_error_event_given_up_on_is_the_unstreamed_error_response() -> None:
    """With no retries left, the error event comes back as the 529 error the unstreamed endpoint sends."""
    broken = _events(_start(), {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    server = Server(httpx2.Response(200, headers=SSE, content=broken))
    (exc,), transport = _run(server, retry=RetryPolicy(max_attempts=1))
    assert isinstance(exc, anthropic.InternalServerError)
    assert exc.status_code == 529
    assert exc.response.headers["x-should-retry"] == "false"
    assert exc.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert transport.statistics().in_flight == 0


def test_probe_cut_short_is_retried_like_a_broken_connection() -> None:
    """A probe stream that ends before message_stop is a failed attempt, retried; the caller gets its answer."""
    cut = _events(_start(), {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    server = Server(httpx2.Response(200, headers=SSE, content=cut))
    (raw,), transport = _run(server, retry=RetryPolicy(initial_delay=0.1, max_delay=0.2))
    assert server.log == [True, False]
    assert raw[0].content[0].text == "hello"
    assert transport.failures.total() == 1
    assert transport.statistics().in_flight == 0


def test_a_delta_the_assembly_does_not_know_is_asked_again_unstreamed() -> None:
    """An unknown delta type is not guessed at: the request is sent again unstreamed, with no failure counted."""
    odd = _events(
        _start(),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        _delta(0, type="future_delta", value="?"),
        {"type": "content_block_stop", "index": 0},
        *_end(),
    )
    server = Server(httpx2.Response(200, headers=SSE, content=odd))
    (raw,), transport = _run(server)
    assert server.log == [True, False]
    assert raw[0].content[0].text == "hello"
    assert transport.failures.total() == 0
    assert transport.statistics().in_flight == 0


def test_a_probe_refused_with_a_json_error_is_handled_as_unstreamed() -> None:
    """A 401 to the streamed probe is the same JSON error an unstreamed call gets: the SDK raises it."""
    body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    server = Server(httpx2.Response(401, json=body))
    (exc,), _ = _run(server)
    assert isinstance(exc, anthropic.AuthenticationError)
    assert server.log == [True]


def test_openai_is_probed_as_asked() -> None:
    """OpenAI-compatible servers may not report a stream's usage: the probe is not rewritten to stream there."""
    seen: list[dict[str, Any]] = []
    completion = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }  # fmt: skip

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json=completion)

    import openai

    clock = FakeClock()
    transport = LimitedTransport(provider="openai", transport=httpx2.MockTransport(handle), clock=clock)
    client = openai.AsyncOpenAI(
        base_url="http://api.test/v1", api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )

    async def main() -> None:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    clock.run(main)
    assert "stream" not in seen[0]


def test_assembly_rebuilds_tool_use_thinking_and_citations() -> None:
    """Tool input JSON, thinking with its signature and citations are assembled as the unstreamed Message has them."""
    citation = {"type": "char_location", "cited_text": "x", "document_index": 0, "document_title": None,
                "start_char_index": 0, "end_char_index": 1}  # fmt: skip
    assembly = ProbeAssembly()
    assembly.feed(
        _events(
            _start(cache_read_input_tokens=3),
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
            _delta(0, type="thinking_delta", thinking="let me "),
            _delta(0, type="thinking_delta", thinking="see"),
            _delta(0, type="signature_delta", signature="sig"),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": "", "citations": None},
            },
            _delta(1, type="text_delta", text="cited"),
            _delta(1, type="citations_delta", citation=citation),
            {"type": "content_block_stop", "index": 1},
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "t1", "name": "get", "input": {}},
            },
            _delta(2, type="input_json_delta", partial_json='{"city": "Pa'),
            _delta(2, type="input_json_delta", partial_json='ris"}'),
            {"type": "content_block_stop", "index": 2},
            *_end(output_tokens=40),
        )
    )
    assembly.feed(b"", end=True)
    message = assembly.message()
    assert message is not None
    assert message["content"] == [
        {"type": "thinking", "thinking": "let me see", "signature": "sig"},
        {"type": "text", "text": "cited", "citations": [citation]},
        {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Paris"}},
    ]
    assert message["usage"] == {"input_tokens": 5, "output_tokens": 40, "cache_read_input_tokens": 3}
    assert message["stop_reason"] == "end_turn"
    assert anthropic.types.Message.model_validate(message).usage.output_tokens == 40


def test_the_probe_calibrates_the_input_estimate_at_its_message_start() -> None:
    """The streamed probe's message_start (10 tokens counted for a prompt the heuristic puts at 5) calibrates the
    estimator while the answer is still streaming, not at its end."""
    released = anyio.Event()
    ended: list[bool] = []

    class Paused(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield _events(_start(input_tokens=10))
            await released.wait()
            yield _text_stream()[len(_events(_start())) :]
            ended.append(True)

    clock = FakeClock()
    server = Server(httpx2.Response(200, headers=SSE, stream=Paused()))
    transport = LimitedTransport(
        provider="anthropic", transport=httpx2.MockTransport(server.handle), clock=clock, seed=3
    )
    client = anthropic.AsyncAnthropic(
        base_url="http://api.test", api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    during: list[float] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(client.messages.create, **PARAMS))
            for _ in range(1_000):  # the probe is read on other tasks: give them turns until it calibrates
                if transport._input.ratio != 1.0:
                    break
                await anyio.lowlevel.checkpoint()
            during.append(transport._input.ratio)
            assert not ended
            released.set()
        second = await client.messages.create(**PARAMS)  # unstreamed, 5 tokens counted for 5 estimated
        assert second.content[0].text == "hello"

    clock.run(main)
    assert during == [2.0]
    assert transport._input.ratio == 1.5  # then the second answer's 1.0, weighted a half


class _Overloaded(Server):
    """Answers the first `failures` generation requests 529 (JSON), then as `Server` does."""

    def __init__(self, failures: int, *streamed: httpx2.Response) -> None:
        super().__init__(*streamed)
        self.failures = failures

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if self.failures > 0:
            self.failures -= 1
            self.log.append(json.loads(request.content).get("stream") is True)
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return httpx2.Response(529, json=error, headers={"request-id": "req_529"})
        return super().handle(request)


def test_the_breaker_s_probes_and_ramp_after_an_overload_stream_and_come_back_whole() -> None:
    """Once eight 529s trip the breaker, the attempts it lets through (its probes, then its ramp's) go out streamed,
    so a 200's headers, not its whole answer, say the service is back; the SDK still gets each Message whole."""
    server = _Overloaded(10, *(httpx2.Response(200, headers=SSE, content=_text_stream()) for _ in range(2)))
    policy = RetryPolicy(max_attempts=20, initial_delay=0.01, max_delay=0.02)
    ((first, _), (second, _)), transport = _run(server, calls=2, retry=policy)
    # The first request's probe, its retries as asked until the breaker trips, then the breaker's probes (two
    # more 529s and the 200) and the ramp's first request: streamed.
    assert server.log == [True] + [False] * 7 + [True] * 4
    assert first.content[0].text == second.content[0].text == "hello"
    assert transport.statistics().in_flight == 0
