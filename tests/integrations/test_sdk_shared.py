"""The SDK drop-in with `shared_limits`: two clients as two processes on one key, one pool in Redis, no 429s."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import anthropic
import anyio
import pytest
import redis

from sluicegate.emulator import RunningEmulator
from sluicegate.integrations.sdk import http_client

pytestmark = pytest.mark.e2e


def test_two_sdk_clients_share_the_key_s_limit(emulator: Callable[..., RunningEmulator], redis_url: str) -> None:
    """Two transports (as two processes would have) join the pool their first request names; together no 429."""
    minute = 3.0
    # 60 requests per 3-second minute: the server's full bucket holds half of the 120 requests, and each client
    # alone would pace itself at the whole rate, so without sharing the second half meets 429s.
    emu = emulator(minute=minute, rpm=60, first_token_latency=0.05)
    name = uuid.uuid4().hex

    async def one_process(offset: int) -> int:
        transport_client = http_client(minute=minute, shared_limits=redis_url, shared_limits_name=name)
        async with anthropic.AsyncAnthropic(
            base_url=emu.base_url, api_key="sk-shared", max_retries=0, http_client=transport_client
        ) as client:
            messages = await asyncio.gather(
                *(
                    client.messages.create(
                        model="claude-haiku-4-5",
                        max_tokens=16,
                        messages=[{"role": "user", "content": f"hi {offset + i}"}],
                    )
                    for i in range(60)
                )
            )
        return len(messages)

    async def main() -> list[int]:
        with anyio.fail_after(60):
            return list(await asyncio.gather(one_process(0), one_process(1000)))

    assert anyio.run(main) == [60, 60]
    assert emu.stats()["status"] == {"200": 120}
    state = redis.Redis.from_url(redis_url).hgetall(f"sluicegate:{{{name}}}:state")
    assert state[b"lim:r"] == b"60"  # the limit both learnt from headers lives in the shared pool
