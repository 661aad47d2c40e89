"""The gateway's first request goes upstream as a stream (the limiter opens at its first byte) and is answered as
the plain call the client made."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from sluicegate.emulator.config import FaultSpec
from sluicegate.retry import RetryPolicy

from .conftest import RunningGateway

pytestmark = pytest.mark.e2e

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say something about sluices."}],
}
HEADERS = {"x-api-key": "anything", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def test_the_first_plain_call_is_rebuilt_into_the_message_a_plain_call_returns(
    gateway: Callable[..., RunningGateway],
) -> None:
    """The first answer (`"stream": false`, streamed upstream) and a later one (plain upstream) have the same JSON
    shape: the same keys in the same order, one text block, stop reason and usage; the content type is JSON."""
    gw = gateway()
    with httpx2.Client(base_url=gw.base_url, timeout=30) as http:
        first = http.post("/v1/messages", json={**PARAMS, "stream": False}, headers=HEADERS)
        assert gw.state.upstream.transport.gate.answered
        later = http.post("/v1/messages", json=PARAMS, headers=HEADERS)
    assert first.status_code == later.status_code == 200
    assert first.headers["content-type"] == later.headers["content-type"] == "application/json"
    assert int(first.headers["content-length"]) == len(first.content)
    rebuilt, plain = first.json(), later.json()
    assert list(rebuilt) == list(plain)
    assert [b["type"] for b in rebuilt["content"]] == [b["type"] for b in plain["content"]] == ["text"]
    assert rebuilt["content"][0]["text"]
    assert rebuilt["stop_reason"] == plain["stop_reason"]
    assert rebuilt["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    assert rebuilt["usage"]["output_tokens"] > 0
    assert first.headers["request-id"].startswith("req_")


def test_only_the_first_call_is_streamed_and_an_error_event_becomes_the_apis_error(
    gateway: Callable[..., RunningGateway],
) -> None:
    """With every answer failing mid-generation, the first call (streamed) gets the stream's overloaded_error as
    a 529, and the next (plain, the upstream having answered) the plain path's 500 api_error."""
    gw = gateway(
        emulator={"faults": (FaultSpec(kind="stream_error", probability=1.0),)},
        retry=RetryPolicy(max_attempts=1),
    )
    with httpx2.Client(base_url=gw.base_url, timeout=30) as http:
        first = http.post("/v1/messages", json=PARAMS, headers=HEADERS)
        later = http.post("/v1/messages", json=PARAMS, headers=HEADERS)
    assert (first.status_code, first.json()["error"]["type"]) == (529, "overloaded_error")
    assert (later.status_code, later.json()["error"]["type"]) == (500, "api_error")
    assert json.loads(first.content)["type"] == "error"


def test_a_call_that_asks_to_stream_is_not_rebuilt(gateway: Callable[..., RunningGateway]) -> None:
    """A client that streams gets its events as they come, first request or not."""
    gw = gateway()
    with httpx2.Client(base_url=gw.base_url, timeout=30) as http:
        answer = http.post("/v1/messages", json={**PARAMS, "stream": True}, headers=HEADERS)
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert b"event: message_stop" in answer.content
