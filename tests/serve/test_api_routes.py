"""The API routes answered before FastAPI's middleware: the same checks, errors and streams as through FastAPI, while
the rest of the app (metrics, stats, dashboard, FastAPI's own 405 and redirect) is still FastAPI's."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2
import pytest
from starlette.types import Message

from sluicegate.serve import Clients, key_digest
from sluicegate.serve._api import _read_body, request_headers
from sluicegate.serve.clients import ClientSpec

from .conftest import RunningGateway

BODY = json.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}
).encode()
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
KEY = "client-key-1"


def _keys() -> Clients:
    return Clients([ClientSpec(name="team", digest=key_digest(KEY))])


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("provider", "path", "key_header"),
    [
        ("anthropic", "/v1/messages", "x-api-key"),
        ("anthropic", "/v1/messages/count_tokens", "x-api-key"),
        ("openai", "/v1/chat/completions", "authorization"),
    ],
)
def test_every_api_route_refuses_a_wrong_key_in_the_apis_shape(
    gateway: Callable[..., RunningGateway], provider: str, path: str, key_header: str
) -> None:
    """A wrong key on each API route gets the API's own 401 body and headers, and the known key is let through."""
    gw = gateway(provider=provider, clients=_keys())
    wrong = "Bearer nope" if key_header == "authorization" else "nope"
    right = f"Bearer {KEY}" if key_header == "authorization" else KEY
    body = BODY if provider == "anthropic" else BODY.replace(b"claude-haiku-4-5", b"gpt-4o-mini")
    with httpx2.Client(timeout=30) as http:
        refused = http.post(gw.base_url + path, content=body, headers={**HEADERS, key_header: wrong})
        allowed = http.post(gw.base_url + path, content=body, headers={**HEADERS, key_header: right})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["x-should-retry"] == "false"
    assert int(refused.headers["content-length"]) == len(refused.content)
    error = refused.json()["error"]
    if provider == "anthropic":
        assert error["type"] == "authentication_error"
        assert refused.headers["request-id"].startswith("req_sg")
    else:
        assert error["code"] == "invalid_api_key"
        assert refused.headers["x-request-id"].startswith("req_sg")
    assert allowed.status_code == 200
    assert gw.state.ledger.refused["authentication"] == 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-sluicegate-priority", "urgent"),
        ("x-sluicegate-max-wait", "-1"),
        ("x-sluicegate-max-wait", "nan"),
        ("x-sluicegate-max-wait", "soon"),
    ],
)
def test_bad_gateway_headers_get_a_400_in_the_apis_shape(
    gateway: Callable[..., RunningGateway], header: str, value: str
) -> None:
    """A bad x-sluicegate-* header is refused with an invalid_request_error naming the header, nothing sent on."""
    gw = gateway()
    with httpx2.Client(timeout=30) as http:
        response = http.post(
            gw.base_url + "/v1/messages", content=BODY, headers={**HEADERS, "x-api-key": "k", header: value}
        )
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(header + ":")
    assert sum(gw.upstream.state.stats.status.values()) == 0


@pytest.mark.e2e
def test_a_stream_passes_through_the_lean_route(gateway: Callable[..., RunningGateway]) -> None:
    """A streamed request is relayed as SSE to its end, with the gateway's queued-time header."""
    gw = gateway()
    body = json.dumps({**json.loads(BODY), "stream": True}).encode()
    with (
        httpx2.Client(timeout=30) as http,
        http.stream("POST", gw.base_url + "/v1/messages", content=body, headers={**HEADERS, "x-api-key": "k"}) as r,
    ):
        events = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-sluicegate-queued-ms" in r.headers
    assert events[0] == "message_start"
    assert "content_block_delta" in events
    assert events[-1] == "message_stop"


@pytest.mark.e2e
def test_the_rest_of_the_app_is_still_fastapis(gateway: Callable[..., RunningGateway]) -> None:
    """/metrics, stats and dashboard answer; a GET on an API path is FastAPI's 405, a trailing slash its redirect."""
    gw = gateway()
    with httpx2.Client(timeout=30) as http:
        metrics = http.get(gw.base_url + "/metrics")
        stats = http.get(gw.base_url + "/_sluicegate/stats")
        page = http.get(gw.base_url + "/")
        wrong_method = http.get(gw.base_url + "/v1/messages")
        slash = http.post(gw.base_url + "/v1/messages/", content=BODY, headers={**HEADERS, "x-api-key": "k"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert stats.json()["in_flight"] == 0
    assert page.headers["content-type"].startswith("text/html")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert slash.status_code == 307
    assert slash.headers["location"].endswith("/v1/messages")


def test_request_headers_lower_case_names_and_keep_the_first_of_a_repeat() -> None:
    """Header names are matched in lower case and a repeated header counts once, its first value (as Starlette)."""
    raw = [(b"X-Api-Key", b"first"), (b"x-api-key", b"second"), (b"content-type", b"application/json")]
    assert request_headers(raw) == {"x-api-key": "first", "content-type": "application/json"}


async def _replay(messages: list[Message]) -> bytes | None:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return await _read_body(receive)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"type": "http.request", "body": b"whole"}], b"whole"),
        (
            [
                {"type": "http.request", "body": b"in ", "more_body": True},
                {"type": "http.request", "body": b"two", "more_body": False},
            ],
            b"in two",
        ),
        ([{"type": "http.request", "body": b"half", "more_body": True}, {"type": "http.disconnect"}], None),
    ],
)
async def test_the_body_is_read_whole_or_not_at_all(messages: list[Message], expected: bytes | None) -> None:
    """A body sent in parts is joined; a client gone before the last part yields None (nobody to answer)."""
    assert await _replay(messages) == expected
