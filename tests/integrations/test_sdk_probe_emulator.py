"""The SDK transport's streamed probe against the real emulator, driven by the official `anthropic` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import prompt_tag
from sluicegate.integrations.sdk import LimitedTransport

pytestmark = pytest.mark.e2e

MODEL = "claude-haiku-4-5"


def _params(i: int, max_tokens: int = 64) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"Ticket {i}: hi"}]}


class _Logged(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, log: list[str], name: str) -> None:
        self._inner, self._log, self._name = inner, log, name

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk
        self._log.append(f"{self._name} read")

    async def aclose(self) -> None:
        await self._inner.aclose()


class Recorder(httpx2.AsyncBaseTransport):
    """The wire as the limited transport uses it: logs each request sent (streamed or not) and each body read."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.log: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        streamed = json.loads(await request.aread()).get("stream") is True
        name = f"{'stream' if streamed else 'plain'}-{len(self.log)}"
        self.log.append(f"{name} sent")
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Logged(response.stream, self.log, name),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_gathered_creates_open_the_limiter_at_the_probes_first_byte(
    emulator: Callable[..., RunningEmulator],
) -> None:
    """Of 20 gathered creates the first goes out streamed and the others leave before its answer ends; every
    caller gets its own unstreamed Message."""
    emu = emulator(minute=6.0, first_token_latency=0.01, per_token_latency=0.01, seed=2)
    wire = Recorder()
    transport = LimitedTransport(provider="anthropic", transport=wire, seed=2)

    async def main() -> list[anthropic.types.Message]:
        client = anthropic.AsyncAnthropic(
            base_url=emu.base_url, api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
        async with client:
            with anyio.fail_after(20):
                return await asyncio.gather(*(client.messages.create(**_params(i)) for i in range(20)))

    messages = anyio.run(main)
    for i, message in enumerate(messages):
        block = message.content[0]
        assert isinstance(block, anthropic.types.TextBlock)
        assert block.text.startswith(f"[{prompt_tag(_params(i))}] ")
        assert message.usage.output_tokens > 0
    assert wire.log[0] == "stream-0 sent"
    assert sum(entry.startswith("stream") for entry in wire.log) == 2  # the probe: sent, then read
    # Its headers let the others go while its tokens were still being generated.
    assert wire.log.index("plain-1 sent") < wire.log.index("stream-0 read")
    assert emu.stats()["status"] == {"200": 20}
    assert transport.statistics().in_flight == 0


def test_the_probes_message_is_the_unstreamed_message(emulator: Callable[..., RunningEmulator]) -> None:
    """The Message assembled from the probe's events equals the emulator's unstreamed answer to the same request
    (the message id aside)."""
    emu = emulator(minute=6.0, first_token_latency=0.01, seed=4)
    transport = LimitedTransport(provider="anthropic")

    async def main() -> tuple[anthropic.types.Message, anthropic.types.Message]:
        client = anthropic.AsyncAnthropic(
            base_url=emu.base_url, api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
        async with client:
            with anyio.fail_after(20):
                probe = await client.messages.create(**_params(7))
                plain = await client.messages.create(**_params(7))
        return probe, plain

    probe, plain = anyio.run(main)
    assert probe.id != plain.id
    assert probe.model_dump(exclude={"id"}) == plain.model_dump(exclude={"id"})
