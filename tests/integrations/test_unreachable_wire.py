"""A closed port on 127.0.0.1, over real sockets: both paths give up with one clear error, not the retry budget."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

import sluicegate
from sluicegate import Engine, RetryPolicy
from sluicegate.integrations.sdk import LimitedTransport

PARAMS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
POLICY = RetryPolicy(unreachable_after=1.0, initial_delay=0.1, max_delay=0.5)


def _closed_port() -> int:
    """A port nothing listens on: bound, then closed, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_engine_stops_on_a_refused_port_with_one_unreachable_error() -> None:
    """Engine.map over 30 items to a closed port ends in a few seconds: one item unreachable, the rest aborted."""
    base = f"http://127.0.0.1:{_closed_port()}"

    async def main() -> list[sluicegate.Result]:
        async with Engine(api_key="sk-test", base_url=base, retry=POLICY) as engine:
            with anyio.fail_after(15):
                results = await engine.map([PARAMS] * 30)
            assert engine.statistics().attempts <= 25
            return results

    started = time.monotonic()
    results = anyio.run(main)
    assert time.monotonic() - started < 10.0
    kinds = sorted(r.error.kind for r in results if r.error is not None)
    assert kinds == ["aborted"] * 29 + ["unreachable"]


def test_sdk_drop_in_gives_up_on_a_refused_port_within_seconds() -> None:
    """30 gathered SDK calls through the transport to a closed port all raise APIConnectionError in a few seconds:
    a few attempts until the host is judged unreachable, then one refused connection per call (not 30 x 10)."""
    base = f"http://127.0.0.1:{_closed_port()}"
    transport = LimitedTransport(retry=POLICY)

    async def main() -> list[Any]:
        client = anthropic.AsyncAnthropic(
            base_url=base, api_key="k", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )
        async with client:
            with anyio.fail_after(15):
                return await asyncio.gather(
                    *(client.messages.create(**PARAMS) for _ in range(30)), return_exceptions=True
                )

    started = time.monotonic()
    outcomes = anyio.run(main)
    assert time.monotonic() - started < 10.0
    assert all(isinstance(o, anthropic.APIConnectionError) for o in outcomes)
    assert transport.attempts <= 30 + 45
    assert transport.failures["connect"] == transport.attempts


def test_create_raises_unreachable_error() -> None:
    """Engine.create to a closed port raises UnreachableError (a TransportError) naming the refused connection."""
    base = f"http://127.0.0.1:{_closed_port()}"

    async def main() -> None:
        async with Engine(api_key="sk-test", base_url=base, retry=POLICY) as engine:
            with pytest.raises(sluicegate.UnreachableError, match="connection failed"):
                await engine.create(**PARAMS)

    anyio.run(main)
