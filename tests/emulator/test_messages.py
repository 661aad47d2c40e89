"""The Messages endpoint driven by the official anthropic SDK against a live emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import count_tokens, prompt_tag

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MODEL = "claude-haiku-4-5"
Factory = Callable[..., RunningEmulator]


def _params(text: str = "hello", max_tokens: int = 100) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}


async def test_plain_call_returns_tagged_message(emulator: Factory) -> None:
    """A plain call yields a Message whose text begins with the prompt tag and whose usage counts the prompt."""
    emu = emulator()
    params = _params()
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(**params)
        msg = await raw.parse()
    assert msg.content[0].type == "text"
    assert msg.content[0].text.startswith(f"[{prompt_tag(params)}] ")
    assert msg.model == "claude-haiku-4-5-20251001"
    assert msg.usage.input_tokens == count_tokens(params)
    assert msg.stop_reason == "end_turn"
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"].isdigit()


async def test_max_tokens_caps_output(emulator: Factory) -> None:
    """A small max_tokens caps output_tokens and gives stop_reason max_tokens."""
    emu = emulator(min_output_tokens=40, max_output_tokens=40)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        msg = await client.messages.create(**_params(max_tokens=5))
    assert msg.usage.output_tokens <= 5
    assert msg.stop_reason == "max_tokens"


async def test_stream_matches_final_message(emulator: Factory) -> None:
    """messages.stream yields deltas whose concatenation is the final text, with final usage."""
    emu = emulator(per_token_latency=0.001)
    params = _params("stream me")
    client = anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0)
    async with client, client.messages.stream(**params) as stream:
        parts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    text = "".join(parts)
    assert len(parts) > 1
    block = final.content[0]
    assert block.type == "text"
    assert text == block.text
    assert text.startswith(f"[{prompt_tag(params)}] ")
    assert final.usage.output_tokens > 1
    assert final.usage.input_tokens == count_tokens(params)


async def test_count_tokens_uses_the_rule(emulator: Factory) -> None:
    """count_tokens returns the documented tokenizer rule's count."""
    emu = emulator()
    params = _params("count these tokens please")
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        result = await client.messages.count_tokens(model=MODEL, messages=params["messages"])
    assert result.input_tokens == count_tokens({"model": MODEL, "messages": params["messages"]})


async def test_rate_limit_error_has_retry_after(emulator: Factory) -> None:
    """An empty request bucket gives RateLimitError with integer retry-after and all rate-limit headers."""
    emu = emulator(rpm=2, minute=6.0)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        await client.messages.create(**_params())
        await client.messages.create(**_params())
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(**_params())
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 3
    assert headers["x-should-retry"] == "true"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert info.value.response.json()["error"]["type"] == "rate_limit_error"


async def test_missing_key_is_401(emulator: Factory) -> None:
    """No API key gives 401 authentication_error; a configured bad key too."""
    emu = emulator(invalid_keys=frozenset({"bad"}))
    async with httpx2.AsyncClient(base_url=emu.base_url) as http:
        resp = await http.post("/v1/messages", json=_params())
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="bad", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(**_params())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}, 400, "model: Field required"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, 400, "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": "a", "messages": []}, 400, "max_tokens: Input should be a valid integer"),
        ({"model": MODEL, "max_tokens": 10}, 400, "messages: Field required"),
        ({"model": MODEL, "max_tokens": 10, "messages": [{"role": "bot", "content": "x"}]}, 400, "messages.0.role"),
        ({"model": "claude-nope", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ],
)
async def test_validation_errors(emulator: Factory, body: dict[str, Any], status: int, message: str) -> None:
    """Ill-formed bodies get the real status, error type and a message naming the field."""
    emu = emulator()
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    ) as http:
        resp = await http.post("/v1/messages", json=body)
    assert resp.status_code == status
    data = resp.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert data["error"]["message"].startswith(message)
    assert data["request_id"] == resp.headers["request-id"]


async def test_oversize_body_is_413(emulator: Factory) -> None:
    """A body over the configured limit gets 413 request_too_large."""
    emu = emulator(max_body_bytes=1000)
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    ) as http:
        resp = await http.post("/v1/messages", json=_params("x" * 2000))
    assert resp.status_code == 413
    assert resp.json()["error"]["type"] == "request_too_large"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", _params()),
        ("/v1/messages/count_tokens", {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}),
        ("/v1/messages/batches", {"requests": [{"custom_id": "a", "params": _params()}]}),
    ],
)
async def test_missing_anthropic_version_is_400(emulator: Factory, path: str, body: dict[str, Any]) -> None:
    """Every Anthropic route wants anthropic-version as the API does; require_version=False relaxes it."""
    strict, relaxed = emulator(), emulator(require_version=False)
    async with httpx2.AsyncClient(headers={"x-api-key": "k"}) as http:
        resp = await http.post(strict.base_url + path, json=body)
        assert resp.status_code == 400
        assert resp.json()["error"] == {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        }
        assert (await http.post(relaxed.base_url + path, json=body)).status_code == 200
