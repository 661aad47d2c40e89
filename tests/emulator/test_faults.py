"""Faults and bucket capacity as a client sees them, against a live emulator."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from sluicegate.emulator import FaultSpec, RunningEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Factory = Callable[..., RunningEmulator]
PARAMS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}


def _client(emu: RunningEmulator, timeout: float = 10.0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0, timeout=timeout)


async def test_overloaded_529(emulator: Factory) -> None:
    """An overloaded window gives status 529 with overloaded_error, then normal service once it ends."""
    emu = emulator(faults=(FaultSpec(kind="overloaded", start=0.0, end=1.0),))
    async with _client(emu) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**PARAMS)
        assert info.value.status_code == 529
        assert info.value.response.json()["error"]["type"] == "overloaded_error"
        await anyio.sleep(1.0)
        msg = await client.messages.create(**PARAMS)
    assert msg.content
    assert emu.stats()["faults"]["overloaded"] == 1


@pytest.mark.parametrize(("kind", "status"), [("api_error", 500), ("unavailable", 503)])
async def test_server_errors(emulator: Factory, kind: str, status: int) -> None:
    """500 and 503 faults reach the SDK as InternalServerError with that status."""
    emu = emulator(faults=(FaultSpec(kind=kind, probability=1.0),))  # type: ignore[arg-type]
    async with _client(emu) as client:
        with pytest.raises(anthropic.InternalServerError) as info:
            await client.messages.create(**PARAMS)
    assert info.value.status_code == status


async def test_connection_reset(emulator: Factory) -> None:
    """A reset fault is a connection error, not a status."""
    emu = emulator(faults=(FaultSpec(kind="reset", probability=1.0),))
    async with _client(emu) as client:
        with pytest.raises(anthropic.APIConnectionError) as info:
            await client.messages.create(**PARAMS)
    assert not isinstance(info.value, anthropic.APITimeoutError)


async def test_hang_times_out(emulator: Factory) -> None:
    """A hang fault never answers: the client's own timeout fires."""
    emu = emulator(faults=(FaultSpec(kind="hang", probability=1.0),))
    async with _client(emu, timeout=0.5) as client:
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(**PARAMS)


async def test_mid_stream_error_event(emulator: Factory) -> None:
    """A mid-stream error event inside a 200 stream raises APIStatusError."""
    emu = emulator(faults=(FaultSpec(kind="stream_error", probability=1.0),), min_output_tokens=40)

    async def consume() -> None:
        async with _client(emu) as client, client.messages.stream(**PARAMS) as stream:
            async for _ in stream.text_stream:
                pass

    with pytest.raises(anthropic.APIStatusError) as info:
        await consume()
    assert "overloaded" in str(info.value).lower() or "Overloaded" in str(info.value.body)


async def test_truncated_stream(emulator: Factory) -> None:
    """A truncated stream ends the connection mid-SSE: the raw client sees a transport error, no message_stop."""
    emu = emulator(faults=(FaultSpec(kind="truncate", probability=1.0),), min_output_tokens=40)
    seen = b""
    statuses: list[int] = []

    async def consume() -> None:
        nonlocal seen
        async with (
            httpx2.AsyncClient(
                base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
            ) as http,
            http.stream("POST", "/v1/messages", json={**PARAMS, "stream": True}) as resp,
        ):
            statuses.append(resp.status_code)
            async for chunk in resp.aiter_bytes():
                seen += chunk

    with pytest.raises(httpx2.TransportError):
        await consume()
    assert statuses == [200]
    assert b"message_start" in seen
    assert b"message_stop" not in seen


async def test_bucket_admits_capacity_then_retry_after_succeeds(emulator: Factory) -> None:
    """rpm=60, minute=6: 100 simultaneous requests give exactly 60 successes; obeying retry-after succeeds."""
    emu = emulator(rpm=60, minute=6.0)
    statuses: list[int] = []
    retry_after: list[int] = []
    async with httpx2.AsyncClient(
        base_url=emu.base_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    ) as http:

        async def one() -> None:
            resp = await http.post("/v1/messages", json=PARAMS)
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                retry_after.append(int(resp.headers["retry-after"]))

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(one)
        # The bucket refills 10 requests per real second: a burst slowed by a busy machine may admit that many more.
        refill = math.ceil((time.monotonic() - started) * 10)
        assert 60 <= statuses.count(200) <= 60 + refill
        assert statuses.count(200) + statuses.count(429) == 100
        assert retry_after
        assert min(retry_after) >= 1
        await anyio.sleep(min(retry_after))
        resp = await http.post("/v1/messages", json=PARAMS)
        assert resp.status_code == 200
