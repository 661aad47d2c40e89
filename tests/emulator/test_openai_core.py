"""The OpenAI chat route on the full emulator core (limits, content, prefix caching), via the openai SDK."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from sluicegate.emulator import FaultSpec, RunningEmulator
from sluicegate.emulator.openai_cache import OpenAIPrefixCache
from sluicegate.emulator.prompt import count_tokens, prompt_blocks, prompt_tag

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Factory = Callable[..., RunningEmulator]
MODEL = "gpt-4o"
SYSTEM = "lorem " * 1000  # 1500 tokens: above OpenAI's 1024-token caching minimum


def _messages(question: str, system: str = SYSTEM) -> list[Any]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _prompt(messages: list[Any]) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages, "tools": []}


def _client(emu: RunningEmulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)


async def test_completion_usage_and_exact_token_headers(emulator: Factory) -> None:
    """A completion is tagged, counts the prompt by the documented rule and reports unrounded OpenAI headers."""
    emu = emulator(itpm=100_000, minute=3600.0)
    messages = _messages("hello", system="be brief")
    async with _client(emu) as client:
        raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=30)
        completion = raw.parse()
    prompt_tokens = count_tokens(_prompt(messages))
    content = completion.choices[0].message.content
    assert content is not None
    assert content.startswith(f"[{prompt_tag({'messages': messages})}] ")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == prompt_tokens
    assert completion.usage.completion_tokens <= 30
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    # Exact, not rounded: OpenAI charges the prompt plus max_tokens up front (the unused part is refunded at the
    # end), and at most a few seconds of refill (28 tokens/s) came back.
    assert 100_000 - prompt_tokens - 30 <= remaining < 100_000 - prompt_tokens - 30 + 100
    assert remaining % 1000 != 0
    # Durations as OpenAI writes them ("6m0s", "1s", "20ms"), never fractional seconds.
    for name in ("requests", "tokens"):
        assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s|\d+ms", raw.headers[f"x-ratelimit-reset-{name}"])


async def test_rate_limit_from_the_core_buckets(emulator: Factory) -> None:
    """With rpm=2 the third request is a 429 with retry-after and zero requests remaining."""
    emu = emulator(rpm=2, minute=3600.0)
    async with _client(emu) as client:
        for _ in range(2):
            await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"))
        with pytest.raises(openai.RateLimitError) as exc_info:
            await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"))
    headers = exc_info.value.response.headers
    assert exc_info.value.code == "rate_limit_exceeded"
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_automatic_prefix_caching_reports_cached_tokens(emulator: Factory) -> None:
    """Long prompts seen before report cached_tokens in 128-token steps; new or short prompts report none."""
    emu = emulator()
    first, repeat, other = _messages("q1"), _messages("q1"), _messages("another question")
    system_prefix = prompt_blocks(_prompt(first))[0].tokens
    async with _client(emu) as client:

        async def cached(messages: list[Any], stream: bool = False) -> int:
            if stream:
                chunks = await client.chat.completions.create(
                    model=MODEL,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                usage = [c.usage async for c in chunks if c.usage is not None][-1]
            else:
                result = await client.chat.completions.create(model=MODEL, messages=messages)
                assert result.usage is not None
                usage = result.usage
            assert usage.prompt_tokens_details is not None
            assert usage.prompt_tokens_details.cached_tokens is not None
            return usage.prompt_tokens_details.cached_tokens

        assert await cached(first) == 0
        assert await cached(repeat) == count_tokens(_prompt(repeat)) // 128 * 128
        assert await cached(other, stream=True) == system_prefix // 128 * 128 == 1408
        short = _messages("q", system="tiny")
        assert await cached(short) == 0
        assert await cached(short) == 0  # below 1024 tokens nothing is cached


def test_prefix_cache_expires_and_stays_bounded() -> None:
    """Entries expire after the TTL, are refreshed by use, and the store never exceeds its size bound."""
    cache = OpenAIPrefixCache(ttl=300.0, max_entries=3)
    prompt = _prompt(_messages("q"))
    cache.remember(prompt, "k", now=0.0)
    assert cache.cached_tokens(prompt, "k", now=299.0) > 0
    assert cache.cached_tokens(prompt, "other-key", now=1.0) == 0
    cache.remember(prompt, "k", now=200.0)
    assert cache.cached_tokens(prompt, "k", now=450.0) > 0
    assert cache.cached_tokens(prompt, "k", now=500.0) == 0
    for i in range(10):
        cache.remember(_prompt(_messages(f"q{i}")), "k", now=600.0)
        assert len(cache) <= 3
    cache.remember(_prompt(_messages("late")), "k", now=1000.0)
    assert len(cache) == 2  # the older entries expired and were swept: the system prefix and this prompt


async def test_chat_requests_are_counted_in_stats(emulator: Factory) -> None:
    """Chat completions show up in the emulator's stats: statuses, tokens and cached reads."""
    emu = emulator(rpm=2, minute=3600.0)
    messages = _messages("q")
    async with _client(emu) as client:
        first = await client.chat.completions.create(model=MODEL, messages=messages)
        second = await client.chat.completions.create(model=MODEL, messages=messages)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model=MODEL, messages=messages)
    assert first.usage is not None
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached > 0
    stats = emu.stats()
    assert stats["status"] == {"200": 2, "429": 1}
    assert stats["endpoints"] == {"POST /v1/chat/completions": {"200": 2, "429": 1}}
    assert stats["input_tokens"] == first.usage.prompt_tokens + second.usage.prompt_tokens - cached
    assert stats["cache_read_input_tokens"] == cached
    assert stats["output_tokens"] == first.usage.completion_tokens + second.usage.completion_tokens
    assert stats["in_flight"] == 0


def _faulty(emulator: Factory, kind: str) -> RunningEmulator:
    return emulator(faults=(FaultSpec(kind=kind, probability=1.0),))  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "status"), [("overloaded", 503), ("api_error", 500), ("unavailable", 503)])
async def test_server_error_faults(emulator: Factory, kind: str, status: int) -> None:
    """Injected 5xx faults reach the openai SDK as InternalServerError with a request id; stats count them."""
    emu = _faulty(emulator, kind)
    async with _client(emu) as client:
        with pytest.raises(openai.InternalServerError) as exc_info:
            await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"))
    assert exc_info.value.status_code == status
    assert exc_info.value.type == "server_error"
    assert exc_info.value.request_id is not None
    assert emu.stats()["faults"] == {kind: 1}


async def test_connection_reset_and_hang_faults(emulator: Factory) -> None:
    """A reset is a connection error and a hang a timeout, as the openai SDK sees them."""
    async with _client(_faulty(emulator, "reset")) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"))
    async with _client(_faulty(emulator, "hang")).with_options(timeout=0.5) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"))


async def test_mid_stream_faults(emulator: Factory) -> None:
    """stream_error is an error chunk (APIError, not a status error); truncate cuts the stream with no [DONE]."""
    long = {"min_output_tokens": 40, "max_output_tokens": 40}
    received: list[Any] = []
    emu = emulator(faults=(FaultSpec(kind="stream_error", probability=1.0),), **long)
    async with _client(emu) as client:
        chunks = await client.chat.completions.create(model=MODEL, messages=_messages("x", "s"), stream=True)

        async def drain() -> None:
            async for chunk in chunks:
                received.append(chunk)

        with pytest.raises(openai.APIError) as exc_info:
            await drain()
    assert not isinstance(exc_info.value, openai.APIStatusError)
    assert len(received) >= 2

    emu = emulator(faults=(FaultSpec(kind="truncate", probability=1.0),), **long)
    seen: list[bytes] = []
    async with httpx2.AsyncClient(headers={"authorization": "Bearer k"}, timeout=10) as http:
        body = {"model": MODEL, "messages": _messages("x", "s"), "stream": True}

        async def read() -> None:
            async with http.stream("POST", emu.openai_base_url + "/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                async for chunk in resp.aiter_bytes():
                    seen.append(chunk)

        with pytest.raises(httpx2.TransportError):
            await read()
    assert b"chat.completion.chunk" in b"".join(seen)
    assert b"[DONE]" not in b"".join(seen)


async def test_tpm_charges_max_tokens_up_front_and_refunds_the_unused_part(emulator: Factory) -> None:
    """OpenAI accounting: prompt + max_tokens leave the TPM bucket at admission; the unused part comes back."""
    emu = emulator(itpm=100_000, minute=3600.0, max_output_tokens=20)
    messages = _messages("hello", system="be brief")
    prompt_tokens = count_tokens(_prompt(messages))
    async with _client(emu) as client:
        first = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=5000)
        used = first.parse().usage
        second = await client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=5000)
    assert used is not None
    assert used.completion_tokens <= 20
    after_first = int(first.headers["x-ratelimit-remaining-tokens"])
    after_second = int(second.headers["x-ratelimit-remaining-tokens"])
    assert 100_000 - prompt_tokens - 5000 <= after_first < 100_000 - prompt_tokens - 5000 + 100
    # The first request's unused 5000 - completion came back before the second charged its own 5000.
    expected = 100_000 - 2 * prompt_tokens - used.completion_tokens - 5000
    assert expected <= after_second < expected + 100
