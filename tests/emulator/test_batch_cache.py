"""The emulator's batch side of the prompt cache, as observed: online writes unseen, a batch's writes seen after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import prompt_blocks

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MODEL = "claude-sonnet-4-5"  # minimum cacheable prefix 1024 tokens
SYSTEM = "policy " * 1600  # about 2,800 tokens


def _params(question: str, ttl: str = "1h") -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 20,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": ttl}}],
        "messages": [{"role": "user", "content": question}],
    }


PREFIX = prompt_blocks(_params("q"))[0].tokens


async def _batch_usage(client: anthropic.AsyncAnthropic, questions: list[str]) -> list[tuple[int, int]]:
    """Run one batch to its end: each request's (cache read, cache write) tokens."""
    requests: Any = [{"custom_id": f"q{i}", "params": _params(q)} for i, q in enumerate(questions)]
    batch = await client.messages.batches.create(requests=requests)
    for _ in range(400):  # bounded: a batch ends within a few polls
        batch = await client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        await anyio.sleep(0.01)
    out = []
    async for line in await client.messages.batches.results(batch.id):
        assert line.result.type == "succeeded"
        usage = line.result.message.usage
        out.append((usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0))
    return out


async def test_online_writes_are_not_read_by_batches_and_a_batch_does_not_read_itself(
    emulator: Callable[..., RunningEmulator],
) -> None:
    """An online write is not read by a batch; a lone batch of 5 writes 5 times; a one-request priming batch makes
    every request of the next batch a read."""
    emu = emulator(minute=6.0, batch_seconds=0.6)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        online = await client.messages.create(**_params("online"))
        assert online.usage.cache_creation_input_tokens == PREFIX
        assert (await client.messages.create(**_params("again"))).usage.cache_read_input_tokens == PREFIX
        lone = await _batch_usage(client, [f"lone {i}" for i in range(5)])
        assert lone == [(0, PREFIX)] * 5
        # The lone batch has ended, so its writes are readable now: that is the priming batch's effect.
        after = await _batch_usage(client, [f"after {i}" for i in range(5)])
        assert after == [(PREFIX, 0)] * 5


async def test_shared_mode_lets_batches_read_online_writes(emulator: Callable[..., RunningEmulator]) -> None:
    """With batch_cache_isolated=False a batch reads what an online request wrote, and its own earlier requests."""
    emu = emulator(minute=6.0, batch_seconds=0.6, batch_cache_isolated=False)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as client:
        await client.messages.create(**_params("online"))
        assert await _batch_usage(client, ["a", "b", "c"]) == [(PREFIX, 0)] * 3
