"""The official SDKs, with only base_url changed, cannot tell the gateway from the API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from .conftest import UPSTREAM_KEY, RunningGateway

pytestmark = pytest.mark.e2e

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say something about sluices."}],
}
HEADERS = {"x-api-key": "anything", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def test_anthropic_json_answer_and_request_id(gateway: Callable[..., RunningGateway]) -> None:
    """A plain create() through the gateway returns the upstream's message, usage and request id."""
    gw = gateway()
    client = anthropic.Anthropic(api_key="local-script-key", base_url=gw.base_url)
    raw = client.messages.with_raw_response.create(**PARAMS)
    message = raw.parse()
    direct = anthropic.Anthropic(api_key="k", base_url=gw.upstream.base_url).messages.create(**PARAMS)
    assert message.content[0].text.split("]")[0] == direct.content[0].text.split("]")[0]  # the prompt's own tag
    assert message.usage.input_tokens == direct.usage.input_tokens
    assert raw.headers["request-id"].startswith("req_")
    assert message._request_id == raw.headers["request-id"]
    assert "anthropic-ratelimit-requests-limit" not in raw.headers  # the account's headers are not the client's


def test_stream_events_arrive_one_by_one(gateway: Callable[..., RunningGateway]) -> None:
    """SSE events pass through as they arrive (no buffering), in the upstream's exact order and form."""
    gw = gateway(emulator={"first_token_latency": 0.05, "per_token_latency": 0.02, "min_output_tokens": 40})
    body = json.dumps({**PARAMS, "stream": True}).encode()
    arrivals: list[tuple[float, str]] = []
    with httpx2.Client(timeout=30) as http:
        start = time.monotonic()
        with http.stream("POST", gw.base_url + "/v1/messages", content=body, headers=HEADERS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event: "):
                    arrivals.append((time.monotonic() - start, line[7:]))
        with http.stream("POST", gw.upstream.base_url + "/v1/messages", content=body, headers=HEADERS) as direct:
            direct_events = [line[7:] for line in direct.iter_lines() if line.startswith("event: ")]
    kinds = [kind for _, kind in arrivals]
    assert kinds == direct_events
    first_delta = next(at for at, kind in arrivals if kind == "content_block_delta")
    stop = next(at for at, kind in arrivals if kind == "message_stop")
    # 40 tokens at 20 ms each: the first delta must reach the client most of a second before the end.
    assert stop - first_delta > 0.5


def test_sdk_stream_helper_through_gateway(gateway: Callable[..., RunningGateway]) -> None:
    """The SDK's stream helper assembles the same final message through the gateway."""
    gw = gateway()
    client = anthropic.Anthropic(api_key="x", base_url=gw.base_url)
    with client.messages.stream(**PARAMS) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "text"
    assert text == block.text
    assert text.startswith("[")
    assert final.usage.output_tokens > 0


def _direct_and_gateway(gw: RunningGateway, body: dict[str, Any]) -> tuple[httpx2.Response, httpx2.Response]:
    payload = json.dumps(body).encode()
    with httpx2.Client(timeout=30) as http:
        via = http.post(gw.base_url + "/v1/messages", content=payload, headers=HEADERS)
        direct = http.post(gw.upstream.base_url + "/v1/messages", content=payload, headers=HEADERS)
    return via, direct


def _without_request_id(response: httpx2.Response) -> Any:
    data = response.json()
    data.pop("request_id", None)
    return data


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({**PARAMS, "max_tokens": -5}, 400, anthropic.BadRequestError),
        ({**PARAMS, "model": "claude-nonexistent-9"}, 404, anthropic.NotFoundError),
    ],
)
def test_final_upstream_errors_pass_through_unchanged(
    gateway: Callable[..., RunningGateway], body: dict[str, Any], status: int, error: type[Exception]
) -> None:
    """400 and 404 come back with the upstream's status and body, and the SDK raises its usual exception."""
    gw = gateway()
    via, direct = _direct_and_gateway(gw, body)
    assert via.status_code == direct.status_code == status
    assert _without_request_id(via) == _without_request_id(direct)
    assert via.headers["x-should-retry"] == "false"
    client = anthropic.Anthropic(api_key="x", base_url=gw.base_url)
    with pytest.raises(error):
        client.messages.create(**body)


def test_upstream_refusing_the_key_is_passed_through(gateway: Callable[..., RunningGateway]) -> None:
    """A 401 from the upstream (its key is bad) reaches the client as the API's 401, without the key."""
    gw = gateway(emulator={"invalid_keys": frozenset({UPSTREAM_KEY})})
    client = anthropic.Anthropic(api_key="x", base_url=gw.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(**PARAMS)
    assert UPSTREAM_KEY not in caught.value.response.text


def test_count_tokens_passes_through(gateway: Callable[..., RunningGateway]) -> None:
    """count_tokens answers exactly what the upstream answers."""
    gw = gateway()
    via = anthropic.Anthropic(api_key="x", base_url=gw.base_url).messages.count_tokens(
        model=PARAMS["model"], messages=PARAMS["messages"]
    )
    direct = anthropic.Anthropic(api_key="x", base_url=gw.upstream.base_url).messages.count_tokens(
        model=PARAMS["model"], messages=PARAMS["messages"]
    )
    assert via.input_tokens == direct.input_tokens > 0


def test_openai_json_and_stream(gateway: Callable[..., RunningGateway]) -> None:
    """With --provider openai the openai SDK gets Chat Completions, JSON and streamed, through the gateway."""
    gw = gateway(provider="openai")
    client = openai.OpenAI(api_key="local", base_url=gw.base_url + "/v1")
    messages: Any = [{"role": "user", "content": "Say something about sluices."}]
    completion = client.chat.completions.create(model="gpt-4o-mini", max_tokens=32, messages=messages)
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", max_tokens=32, messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.split("]")[0] == (completion.choices[0].message.content or "").split("]")[0]
    # Nothing was added to the stream: no usage chunk the client did not ask for.
    assert all(c.choices for c in chunks)


def test_openai_stream_without_include_usage_is_costed_exactly(gateway: Callable[..., RunningGateway]) -> None:
    """A stream that did not ask for its usage shows the client no usage, yet the gateway counts the tokens the
    upstream reported (it asked on the client's behalf), not an estimate from the text."""
    gw = gateway(provider="openai", emulator={"min_output_tokens": 23, "max_output_tokens": 23})
    client = openai.OpenAI(api_key="local", base_url=gw.base_url + "/v1")
    # Long enough that an estimate from the text (with its safety margin) would differ from the count.
    messages: Any = [{"role": "user", "content": "Say something about sluices. " * 40}]
    plain = list(client.chat.completions.create(model="gpt-4o-mini", max_tokens=64, messages=messages, stream=True))
    assert all(c.choices and c.usage is None for c in plain)
    asked = list(
        client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=64, messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = asked[-1].usage  # a client that asked gets the usage chunk, untouched
    assert usage is not None
    expected = (2 * usage.prompt_tokens, 2 * usage.completion_tokens)  # the same request twice, same answer
    deadline = time.monotonic() + 5
    while True:
        local = next(c for c in gw.stats()["clients"] if c["name"] == "local")
        if (local["input_tokens"], local["output_tokens"]) == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (local["input_tokens"], local["output_tokens"]) == expected
