"""The anthropic-organization-id header and the organization id in rate-limit messages, per API key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.organization import organization_id

MODEL = "claude-haiku-4-5"
ORG = "anthropic-organization-id"
Factory = Callable[..., RunningEmulator]


def _params(text: str = "hello") -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": text}]}


@pytest.mark.parametrize("key", ["k", "sk-ant-api03-abc", "key-with-uuid-5d1c3a8e", "é" * 40])
def test_organization_id_is_a_stable_uuid_that_hides_the_key(key: str) -> None:
    """Each key maps to one version-5 uuid, the same on every call and different from another key's."""
    org = organization_id(key)
    assert uuid.UUID(org).version == 5
    assert str(uuid.UUID(org)) == org
    assert organization_id(key) == org
    assert organization_id(key + "x") != org
    assert key not in org


@pytest.mark.e2e
@pytest.mark.anyio
async def test_every_anthropic_response_carries_the_key_organization(emulator: Factory) -> None:
    """Messages (JSON and SSE), count_tokens, batch routes and their errors all name the key's organization."""
    emu = emulator()
    org = organization_id("key-a")
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="key-a", max_retries=0) as client:
        raw = await client.messages.with_raw_response.create(**_params())
        assert raw.headers[ORG] == org
        async with client.messages.stream(**_params()) as stream:
            assert stream.response.headers[ORG] == org
            await stream.get_final_message()
        counted = await client.messages.with_raw_response.count_tokens(model=MODEL, messages=_params()["messages"])
        assert counted.headers[ORG] == org
        with pytest.raises(anthropic.NotFoundError) as missing_model:
            await client.messages.create(**{**_params(), "model": "claude-no-such-model"})
        assert missing_model.value.response.headers[ORG] == org
        requests: Any = [{"custom_id": "a", "params": _params()}]
        created = await client.messages.batches.with_raw_response.create(requests=requests)
        assert created.headers[ORG] == org
        batch = await created.parse()
        retrieved = await client.messages.batches.with_raw_response.retrieve(batch.id)
        assert retrieved.headers[ORG] == org
        with pytest.raises(anthropic.NotFoundError) as missing_batch:
            await client.messages.batches.retrieve("msgbatch_01" + "x" * 22)
        assert missing_batch.value.response.headers[ORG] == org
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, auth_token="key-b", max_retries=0) as other:
        raw = await other.messages.with_raw_response.create(**_params())
        assert raw.headers[ORG] == organization_id("key-b") != org


@pytest.mark.e2e
@pytest.mark.anyio
async def test_rate_limit_message_names_the_organization_of_the_header(emulator: Factory) -> None:
    """A rate-limit 429 carries the organization id in its header and, in parentheses, in the API's message."""
    emu = emulator(rpm=1, minute=3600.0)
    org = organization_id("key-a")
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="key-a", max_retries=0) as client:
        await client.messages.create(**_params())
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(**_params())
    assert info.value.response.headers[ORG] == org
    message = info.value.response.json()["error"]["message"]
    assert message.startswith(f"This request would exceed the rate limit for your organization ({org}) of 1 requests ")
    assert message.endswith("to discuss your options for a rate limit increase.")
    assert "key-a" not in message


@pytest.mark.e2e
@pytest.mark.anyio
async def test_refused_keys_get_no_organization(emulator: Factory) -> None:
    """A 401 (no key, or a key configured as invalid) names no organization, on Messages and batch routes."""
    emu = emulator(invalid_keys=frozenset({"bad"}))
    headers = {"anthropic-version": "2023-06-01"}
    async with httpx2.AsyncClient(base_url=emu.base_url, headers=headers) as http:
        for extra in ({}, {"x-api-key": "bad"}):
            for method, path in (("POST", "/v1/messages"), ("GET", "/v1/messages/batches")):
                resp = await http.request(method, path, json=_params() if method == "POST" else None, headers=extra)
                assert resp.status_code == 401
                assert ORG not in resp.headers
