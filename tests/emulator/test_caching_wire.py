"""Prompt caching on the wire: usage fields, commit-at-start, ITPM charge and count_tokens, via the anthropic SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import count_tokens, prompt_blocks

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Factory = Callable[..., RunningEmulator]
MODEL = "claude-haiku-4-5"  # minimum cacheable prefix 4096 tokens
SYSTEM = "lorem " * 4000  # 6000 tokens of text, well above the minimum
REMAINING = "anthropic-ratelimit-input-tokens-remaining"


def _params(question: str = "q", ttl: str | None = None) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {
        "model": MODEL,
        "max_tokens": 30,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": control}],
        "messages": [{"role": "user", "content": question}],
    }


PARAMS = _params()
PREFIX = prompt_blocks(PARAMS)[0].tokens  # the system block with the request overhead
TOTAL = count_tokens(PARAMS)


def _client(emu: RunningEmulator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0)


async def _call(client: anthropic.AsyncAnthropic, stream: bool) -> tuple[Any, dict[str, str]]:
    """One request (JSON or SSE); its final usage and response headers."""
    if stream:
        async with client.messages.stream(**PARAMS) as s:
            headers = dict(s.response.headers)
            message = await s.get_final_message()
        return message.usage, headers
    raw = await client.messages.with_raw_response.create(**PARAMS)
    return (await raw.parse()).usage, dict(raw.headers)


async def test_simultaneous_requests_all_write_then_later_ones_read(emulator: Factory) -> None:
    """4 overlapping cached requests (JSON and SSE) all write; later ones read, and reads cost no ITPM."""
    # A long emulated minute keeps the input bucket from refilling visibly while the test runs.
    emu = emulator(itpm=100_000, minute=3600.0, first_token_latency=0.8)
    results: list[tuple[Any, dict[str, str]]] = []
    async with _client(emu) as client:

        async def one(stream: bool) -> None:
            results.append(await _call(client, stream))

        async with anyio.create_task_group() as tg:
            for stream in (False, True, False, True):
                tg.start_soon(one, stream)
        for usage, _ in results:
            assert usage.cache_creation_input_tokens == PREFIX
            assert usage.cache_read_input_tokens == 0
            assert usage.input_tokens == TOTAL - PREFIX
        # Four writes charged in full: 100000 - 4 * TOTAL, rounded to the nearest thousand.
        charged = round((100_000 - 4 * TOTAL) / 1000) * 1000
        assert charged == 76_000

        for stream in (False, True):
            usage, headers = await _call(client, stream)
            assert usage.cache_read_input_tokens == PREFIX
            assert usage.cache_creation_input_tokens == 0
            assert usage.input_tokens == TOTAL - PREFIX
            # Only the uncached tail is charged; charging the read would leave 70000.
            assert headers[REMAINING] == str(charged)
    stats = emu.stats()
    assert stats["cache_creation_input_tokens"] == 4 * PREFIX
    assert stats["cache_read_input_tokens"] == 2 * PREFIX


async def test_one_hour_ttl_reports_in_cache_creation_breakdown(emulator: Factory) -> None:
    """A 1h breakpoint's write shows up as ephemeral_1h_input_tokens in the usage breakdown."""
    emu = emulator()
    async with _client(emu) as client:
        message = await client.messages.create(**_params(ttl="1h"))
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == PREFIX
    assert message.usage.cache_creation.ephemeral_5m_input_tokens == 0


async def test_count_tokens_accepts_cache_control_and_caches_nothing(emulator: Factory) -> None:
    """count_tokens with cache_control returns the whole prompt and writes no entry; a bad ttl is a 400."""
    emu = emulator()
    async with _client(emu) as client:
        counted = await client.messages.count_tokens(model=MODEL, system=PARAMS["system"], messages=PARAMS["messages"])
        assert counted.input_tokens == TOTAL
        message = await client.messages.create(**PARAMS)
        assert message.usage.cache_creation_input_tokens == PREFIX
        bad = _params(ttl="2h")
        with pytest.raises(anthropic.BadRequestError) as exc_info:
            await client.messages.count_tokens(model=MODEL, system=bad["system"], messages=bad["messages"])
        assert "ttl" in str(exc_info.value)
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(**bad)


async def test_max_tokens_zero_prewarms_the_cache(emulator: Factory) -> None:
    """max_tokens=0 writes the cache and generates nothing; the next request reads; streaming it is a 400."""
    emu = emulator()
    async with _client(emu) as client:
        warm = await client.messages.create(**{**PARAMS, "max_tokens": 0})
        assert warm.content == []
        assert warm.stop_reason == "max_tokens"
        assert warm.usage.output_tokens == 0
        assert warm.usage.cache_creation_input_tokens == PREFIX
        hot = await client.messages.create(**_params("a later question"))
        assert hot.usage.cache_read_input_tokens == PREFIX
        with pytest.raises(anthropic.BadRequestError):
            await client.messages.create(**{**PARAMS, "max_tokens": 0, "stream": True})
        with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 0"):
            await client.messages.create(**{**PARAMS, "max_tokens": -1})


async def test_cache_entries_are_per_api_key_and_shared_with_that_keys_batches(emulator: Factory) -> None:
    """Each key is its own organisation: another key cannot read an entry; the same key's batches can, when the
    batch cache is not isolated."""
    # A 6-second minute: entries live 30 real seconds (5 emulated minutes); a batch takes 0.06 real seconds.
    emu = emulator(minute=6.0, batch_seconds=0.6, batch_cache_isolated=False)
    clients = {k: anthropic.AsyncAnthropic(base_url=emu.base_url, api_key=k, max_retries=0) for k in ("a", "b")}
    async with clients["a"] as a, clients["b"] as b:
        assert (await a.messages.create(**PARAMS)).usage.cache_creation_input_tokens == PREFIX
        assert (await b.messages.create(**PARAMS)).usage.cache_creation_input_tokens == PREFIX
        assert (await a.messages.create(**PARAMS)).usage.cache_read_input_tokens == PREFIX
        requests: Any = [{"custom_id": "x", "params": _params("from a batch")}]
        reads = {}
        for name, client in (("a", a), ("b", b), ("c", clients["a"].with_options(api_key="c"))):
            batch = await client.messages.batches.create(requests=requests)
            for _ in range(100):  # bounded: the batch ends within a few polls
                batch = await client.messages.batches.retrieve(batch.id)
                if batch.processing_status == "ended":
                    break
                await anyio.sleep(0.02)
            [line] = [r async for r in await client.messages.batches.results(batch.id)]
            assert line.result.type == "succeeded"
            reads[name] = line.result.message.usage.cache_read_input_tokens
        assert reads == {"a": PREFIX, "b": PREFIX, "c": 0}
