"""The SDK drop-in against the real emulator, driven by the official `anthropic` and `openai` clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import httpx2
import openai
import pytest

from sluicegate import RetryPolicy
from sluicegate.emulator import FaultSpec, RunningEmulator
from sluicegate.emulator.prompt import prompt_tag
from sluicegate.integrations.sdk import LimitedTransport, http_client

pytestmark = pytest.mark.e2e

MODEL = "claude-haiku-4-5"
FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.5)


def _params(i: int, max_tokens: int = 32) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"Ticket {i}: hi"}]}


def _client(emu: RunningEmulator, transport: LimitedTransport, key: str = "k") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=emu.base_url, api_key=key, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )


def test_hundred_concurrent_creates_under_a_binding_rpm(emulator: Callable[..., RunningEmulator]) -> None:
    """100 concurrent messages.create calls under a binding RPM all succeed, each with its own answer, few 429s."""
    minute = 1.5
    emu = emulator(minute=minute, rpm=50, first_token_latency=0.02, seed=1)
    transport = LimitedTransport(provider="anthropic", minute=minute, retry=FAST_RETRY, seed=1)

    async def main() -> list[anthropic.types.Message]:
        async with _client(emu, transport) as client:
            with anyio.fail_after(20):
                return await asyncio.gather(*(client.messages.create(**_params(i)) for i in range(100)))

    messages = anyio.run(main)
    for i, message in enumerate(messages):
        block = message.content[0]
        assert isinstance(block, anthropic.types.TextBlock)
        assert block.text.startswith(f"[{prompt_tag(_params(i))}] ")
    status = emu.stats()["status"]
    assert status.get("200") == 100
    assert status.get("429", 0) <= 5
    assert transport.limiter.ceiling() == 50 / minute  # the RPM learnt from headers, per the given window
    assert transport.statistics().in_flight == 0


def test_streams_pass_through_and_settle_their_permits(emulator: Callable[..., RunningEmulator]) -> None:
    """messages.stream and create(stream=True) work unchanged; every permit is settled, even a stream left early."""
    emu = emulator(minute=3.0, first_token_latency=0.01, per_token_latency=0.001)
    transport = LimitedTransport(provider="anthropic", minute=3.0)

    async def main() -> None:
        async with _client(emu, transport) as client:
            with anyio.fail_after(15):
                params = _params(1)
                async with client.messages.stream(**params) as stream:
                    pieces = [text async for text in stream.text_stream]
                    final = await stream.get_final_message()
                assert len(pieces) > 1
                assert "".join(pieces).startswith(f"[{prompt_tag(params)}] ")
                assert final.usage.output_tokens > 0
                events = await client.messages.create(**_params(2), stream=True)
                kinds = [event.type async for event in events]
                assert kinds[0] == "message_start"
                assert kinds[-1] == "message_stop"
                early = await client.messages.create(**_params(3, max_tokens=64), stream=True)
                async for _ in early:
                    break
                await early.close()
        stats = transport.statistics()
        assert stats.in_flight == 0
        assert stats.latency_estimate is not None
        assert transport.attempts == 3

    anyio.run(main)


def test_faults_are_retried_transparently(emulator: Callable[..., RunningEmulator]) -> None:
    """Under 15% 529, 5% 500, 5% connection resets and 3% hangs (cut by the SDK's timeout), 60 creates and 10
    streams all succeed; the SDK never sees a failure."""
    faults = (
        FaultSpec(kind="overloaded", probability=0.15),
        FaultSpec(kind="api_error", probability=0.05),
        FaultSpec(kind="reset", probability=0.05),
        FaultSpec(kind="hang", probability=0.03),
    )
    emu = emulator(minute=3.0, rpm=6000, seed=4, faults=faults)
    transport = LimitedTransport(provider="anthropic", minute=3.0, retry=FAST_RETRY, seed=4)

    async def main() -> tuple[list[anthropic.types.Message], list[list[str]]]:
        client = anthropic.AsyncAnthropic(
            base_url=emu.base_url,
            api_key="k",
            max_retries=0,
            timeout=httpx2.Timeout(1.0),
            http_client=httpx2.AsyncClient(transport=transport),
        )

        async def streamed(i: int) -> list[str]:
            events = await client.messages.create(**_params(100 + i), stream=True)
            return [event.type async for event in events]

        async with client:
            with anyio.fail_after(25):
                messages = await asyncio.gather(*(client.messages.create(**_params(i)) for i in range(60)))
                streams = await asyncio.gather(*(streamed(i) for i in range(10)))
        return messages, streams

    messages, streams = anyio.run(main)
    assert len(messages) == 60
    assert all(kinds[-1] == "message_stop" for kinds in streams)
    assert emu.stats()["status"].get("200") == 70
    assert sum(emu.stats()["faults"].values()) > 0  # faults really happened
    assert sum(transport.failures.values()) > 0
    assert transport.statistics().in_flight == 0


def test_bad_key_raises_authentication_error_after_few_requests(emulator: Callable[..., RunningEmulator]) -> None:
    """50 concurrent calls with a bad key all raise AuthenticationError; at most 3 requests reach the server."""
    emu = emulator(minute=3.0, invalid_keys=frozenset({"sk-bad"}))
    transport = LimitedTransport(provider="anthropic", minute=3.0)

    async def main() -> list[BaseException | anthropic.types.Message]:
        async with _client(emu, transport, key="sk-bad") as client:
            with anyio.fail_after(15):
                calls = (client.messages.create(**_params(i)) for i in range(50))
                return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = anyio.run(main)
    assert all(isinstance(o, anthropic.AuthenticationError) for o in outcomes)
    assert sum(emu.stats()["status"].values()) <= 3
    assert transport.statistics().in_flight == 0


def test_openai_chat_completions_through_the_transport(emulator: Callable[..., RunningEmulator]) -> None:
    """openai.AsyncOpenAI chat.completions (JSON and stream) works and the limiter learns x-ratelimit limits."""
    emu = emulator(minute=3.0, rpm=3000)

    transport = LimitedTransport(provider="openai", minute=3.0)

    async def main() -> None:
        client = openai.AsyncOpenAI(
            base_url=emu.openai_base_url,
            api_key="k",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=transport),
        )
        async with client:
            with anyio.fail_after(15):
                answers = await asyncio.gather(
                    *(
                        client.chat.completions.create(
                            model="gpt-4o-mini", max_tokens=32, messages=[{"role": "user", "content": f"hello {i}"}]
                        )
                        for i in range(20)
                    )
                )
                assert all(a.usage is not None and a.usage.completion_tokens > 0 for a in answers)
                chunks = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    max_tokens=32,
                    messages=[{"role": "user", "content": "stream me"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
                assert text
            assert transport.limiter.ceiling() == 3000 * (1.0 / 3.0)  # the RPM learnt from x-ratelimit headers
            assert transport.statistics().in_flight == 0

    anyio.run(main)


def test_http_client_helper_is_a_one_line_drop_in(emulator: Callable[..., RunningEmulator]) -> None:
    """anthropic.AsyncAnthropic(http_client=http_client(...)) sends messages through the limiter."""
    emu = emulator(minute=3.0)

    async def main() -> None:
        client = anthropic.AsyncAnthropic(
            base_url=emu.base_url, api_key="k", max_retries=0, http_client=http_client(provider="anthropic", minute=3.0)
        )
        async with client:
            with anyio.fail_after(15):
                message = await client.messages.create(**_params(7))
        block = message.content[0]
        assert isinstance(block, anthropic.types.TextBlock)
        assert block.text.startswith(f"[{prompt_tag(_params(7))}] ")

    anyio.run(main)


def test_other_endpoints_pass_straight_through(emulator: Callable[..., RunningEmulator]) -> None:
    """count_tokens goes to the server untouched: only messages.create counts as a limited attempt."""
    emu = emulator(minute=3.0)
    transport = LimitedTransport(provider="anthropic", minute=3.0)

    async def main() -> None:
        async with _client(emu, transport) as client:
            with anyio.fail_after(15):
                counted = await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
                assert counted.input_tokens > 0
                await client.messages.create(**_params(8))

    anyio.run(main)
    assert transport.attempts == 1


def test_shared_transport_survives_one_client_closing(emulator: Callable[..., RunningEmulator]) -> None:
    """Two clients share one limiter; closing the first while the second is busy breaks neither."""
    emu = emulator(minute=3.0, first_token_latency=0.2)
    transport = LimitedTransport(provider="anthropic", minute=3.0)

    async def main() -> None:
        second = _client(emu, transport)
        async with _client(emu, transport) as first:
            await first.messages.create(**_params(1))
            busy = asyncio.ensure_future(second.messages.create(**_params(2)))
            await asyncio.sleep(0.05)
        message = await busy  # the first client closed while this request was in flight
        assert message.usage.output_tokens > 0
        again = await second.messages.create(**_params(3))
        assert again.usage.output_tokens > 0
        await second.close()
        assert transport.attempts == 3

    anyio.run(main)


def test_spend_cap_stops_both_sdks_within_three_requests(emulator: Callable[..., RunningEmulator]) -> None:
    """A spend-cap 429 (Anthropic) or insufficient_quota 429 (OpenAI) raises RateLimitError for 30 concurrent
    calls of each SDK, and at most 3 requests per SDK reach the server."""
    emu = emulator(minute=3.0, spend_cap=True)
    ours = LimitedTransport(provider="anthropic", minute=3.0)
    theirs = LimitedTransport(provider="openai", minute=3.0)

    async def main() -> tuple[list[Any], list[Any]]:
        claude = _client(emu, ours)
        gpt = openai.AsyncOpenAI(
            base_url=emu.openai_base_url, api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=theirs)
        )
        async with claude, gpt:
            with anyio.fail_after(15):
                first = await asyncio.gather(
                    *(claude.messages.create(**_params(i)) for i in range(30)), return_exceptions=True
                )
                second = await asyncio.gather(
                    *(
                        gpt.chat.completions.create(
                            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": f"q {i}"}]
                        )
                        for i in range(30)
                    ),
                    return_exceptions=True,
                )
        return first, second

    first, second = anyio.run(main)
    assert all(isinstance(o, anthropic.RateLimitError) for o in first)
    assert all(isinstance(o, openai.RateLimitError) for o in second)
    assert ours.attempts <= 3
    assert theirs.attempts <= 3
    assert sum(emu.stats()["status"].values()) <= 6
