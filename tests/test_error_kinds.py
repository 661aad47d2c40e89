"""Each kind of error through the one gate, on the engine path and the SDK drop-in path (in-process, fake clock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from sluicegate import Engine, RetryPolicy
from sluicegate._errors import ERROR_KINDS, ErrorKind
from sluicegate.integrations.sdk import LimitedTransport
from sluicegate.testing import FakeClock

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 3},
}


def _error(status: int, error_type: str, headers: dict[str, str] | None = None, code: str | None = None) -> Any:
    error: dict[str, Any] = {"type": error_type, "message": f"scripted {error_type}"}
    if code:
        error["details"] = {"error_code": code}
    return lambda: httpx2.Response(status, json={"type": "error", "error": error}, headers=headers)


def _raise(exc: Exception) -> Callable[[], httpx2.Response]:
    def fail() -> httpx2.Response:
        raise exc

    return fail


# One way to provoke each kind the API (or the network) can produce, as the server's first answer.
FAULTS: dict[ErrorKind, Callable[[], httpx2.Response]] = {
    "invalid_request": _error(400, "invalid_request_error"),
    "authentication": _error(401, "authentication_error"),
    "quota_exceeded": _error(429, "rate_limit_error", code="enforced_spend_limit_reached"),
    "rate_limited": _error(429, "rate_limit_error", {"retry-after": "3"}),
    "overloaded": _error(529, "overloaded_error"),
    "server": _error(500, "api_error"),
    "connect": _raise(httpx2.ConnectError("connection refused")),
    "timeout": _raise(httpx2.ReadTimeout("no data")),
    "transport": _raise(httpx2.RemoteProtocolError("peer closed the connection")),
}
# What the official SDK raises when our transport hands the same failure on.
SDK_ERRORS: dict[ErrorKind, type[Exception]] = {
    "invalid_request": anthropic.BadRequestError,
    "authentication": anthropic.AuthenticationError,
    "quota_exceeded": anthropic.RateLimitError,
    "rate_limited": anthropic.RateLimitError,
    "overloaded": anthropic.OverloadedError,
    "server": anthropic.InternalServerError,
    "connect": anthropic.APIConnectionError,
    "timeout": anthropic.APITimeoutError,
    "transport": anthropic.APIConnectionError,
}
RETRYABLE = [kind for kind in FAULTS if ERROR_KINDS[kind].retryable]


class Server:
    """Answers the first `failures` generation requests with the fault, then with a message."""

    def __init__(self, fault: Callable[[], httpx2.Response], failures: int = 1_000_000) -> None:
        self.fault = fault
        self.failures = failures
        self.requests = 0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        if self.requests <= self.failures:
            return self.fault()
        return httpx2.Response(200, json=MESSAGE)


def _engine(server: Server, clock: FakeClock, retry: RetryPolicy) -> Engine:
    transport = httpx2.MockTransport(server.handle)
    return Engine(api_key="sk-test", base_url="http://api.test", transport=transport, clock=clock, seed=1, retry=retry)


def _sdk(server: Server, clock: FakeClock, retry: RetryPolicy) -> tuple[LimitedTransport, anthropic.AsyncAnthropic]:
    transport = LimitedTransport(transport=httpx2.MockTransport(server.handle), clock=clock, seed=1, retry=retry)
    client = anthropic.AsyncAnthropic(
        base_url="http://api.test", api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )
    return transport, client


@pytest.mark.parametrize("kind", list(FAULTS))
def test_engine_raises_the_kinds_exception_class(kind: ErrorKind) -> None:
    """Engine.create raises exactly the table's class for the kind, after one attempt, counted under the kind."""
    clock = FakeClock()
    server = Server(FAULTS[kind])

    async def main() -> None:
        async with _engine(server, clock, RetryPolicy(max_attempts=1)) as engine:
            with pytest.raises(ERROR_KINDS[kind].exception) as caught:
                await engine.create(**PARAMS)
            assert type(caught.value) is ERROR_KINDS[kind].exception
            stats = engine.statistics()
            assert stats.failures_by_reason == {kind: 1}
            assert stats.attempts == 1
            # A 429 holds for everyone even when this item gives up on it.
            assert (stats.limiter.cooldown_remaining > 0) == (kind == "rate_limited")

    clock.run(main)
    assert server.requests == 1


@pytest.mark.parametrize("kind", list(FAULTS))
def test_sdk_transport_hands_on_the_same_failure(kind: ErrorKind) -> None:
    """The SDK raises its own class for the kind after one attempt; the transport counts it and cools down alike."""
    clock = FakeClock()
    server = Server(FAULTS[kind])
    transport, client = _sdk(server, clock, RetryPolicy(max_attempts=1))

    async def main() -> None:
        with pytest.raises(SDK_ERRORS[kind]):
            await client.messages.create(**PARAMS)
        assert transport.failures == {kind: 1}
        assert transport.attempts == 1
        assert (transport.statistics().cooldown_remaining > 0) == (kind == "rate_limited")

    clock.run(main)
    assert server.requests == 1


@pytest.mark.parametrize("kind", RETRYABLE)
def test_retryable_kinds_are_retried_on_both_paths(kind: ErrorKind) -> None:
    """A retryable kind fails the first attempt and the second succeeds, on the engine path and the SDK path."""
    clock = FakeClock()
    engine_server, sdk_server = Server(FAULTS[kind], failures=1), Server(FAULTS[kind], failures=1)
    transport, client = _sdk(sdk_server, clock, RetryPolicy(max_attempts=2))

    async def main() -> None:
        async with _engine(engine_server, clock, RetryPolicy(max_attempts=2)) as engine:
            result = await engine.create(**PARAMS)
            assert result.attempts == 2
            assert engine.statistics().failures_by_reason == {kind: 1}
        message = await client.messages.create(**PARAMS)
        assert message.content[0].text == "hello"  # type: ignore[union-attr]
        assert transport.failures == {kind: 1}

    clock.run(main)
    assert (engine_server.requests, sdk_server.requests) == (2, 2)


@pytest.mark.parametrize("kind", [k for k in FAULTS if not ERROR_KINDS[k].retryable])
def test_final_kinds_are_not_retried_on_either_path(kind: ErrorKind) -> None:
    """A kind the table marks final is sent once on both paths, whatever the attempts allowed."""
    clock = FakeClock()
    engine_server, sdk_server = Server(FAULTS[kind]), Server(FAULTS[kind])
    _, client = _sdk(sdk_server, clock, RetryPolicy(max_attempts=5))

    async def main() -> None:
        async with _engine(engine_server, clock, RetryPolicy(max_attempts=5)) as engine:
            with pytest.raises(ERROR_KINDS[kind].exception):
                await engine.create(**PARAMS)
        with pytest.raises(SDK_ERRORS[kind]):
            await client.messages.create(**PARAMS)

    clock.run(main)
    assert (engine_server.requests, sdk_server.requests) == (1, 1)


@pytest.mark.parametrize("kind", [k for k in FAULTS if ERROR_KINDS[k].stops_run])
def test_run_stopping_kinds_stop_the_whole_map(kind: ErrorKind) -> None:
    """A bad key or an empty account ends the first item with its kind and every other item as aborted."""
    clock = FakeClock()
    server = Server(FAULTS[kind])

    async def main() -> None:
        async with _engine(server, clock, RetryPolicy()) as engine:
            results = await engine.map([PARAMS] * 10)
            assert [r.error.kind for r in results if r.error] == [kind] + ["aborted"] * 9

    clock.run(main)
    assert server.requests == 1
