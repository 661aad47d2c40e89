"""A request larger than a rate-limit bucket never stalls the queue: refused at once, or admitted and charged."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
from mock_anthropic import MockAPI

import sluicegate
from sluicegate import Engine
from sluicegate.integrations import LimitedTransport
from sluicegate.testing import FakeClock


def _requests(max_tokens: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r{i}",
            "model": "claude-haiku-4-5",
            "max_tokens": m,
            "messages": [{"role": "user", "content": f"prompt number {i}"}],
        }
        for i, m in enumerate(max_tokens)
    ]


def _run(accounting: str, max_tokens: list[int]) -> tuple[list[sluicegate.Result], float, MockAPI]:
    clock = FakeClock()
    api = MockAPI(rpm=600, otpm=5_000, latency=1.0, output_tokens=500)

    async def main() -> list[sluicegate.Result]:
        async with Engine(
            api_key="k",
            base_url="http://api.test",
            transport=api.transport(),
            clock=clock,
            seed=1,
            output_accounting=accounting,  # type: ignore[arg-type]
        ) as engine:
            return await engine.map(_requests(max_tokens))

    results = clock.run(main)
    return results, clock.now(), api


def test_reserved_accounting_ends_an_oversize_request_at_once_and_the_rest_flow() -> None:
    """max_tokens 8,000 under a 5,000 output-token limit charged at admission: that item is an errored result
    naming the field and the limit, and the items queued behind it all succeed within seconds."""
    results, elapsed, _ = _run("reserved", [100, 8_000, 100, 100, 100])
    big = results[1]
    assert big.error is not None
    assert big.error.kind == "invalid_request"
    assert "max_tokens" in big.error.message
    assert "5,000 output tokens" in big.error.message
    assert [r.ok for i, r in enumerate(results) if i != 1] == [True] * 4
    assert elapsed < 5.0


def test_produced_accounting_admits_an_oversize_request_and_charges_what_it_produced() -> None:
    """The same items where the server counts produced tokens: every one succeeds, none waits for a bucket
    larger than the limit."""
    results, elapsed, api = _run("produced", [100, 8_000, 100, 100, 100])
    assert all(r.ok for r in results)
    assert api.statuses[429] == 0
    assert elapsed < 5.0


def _sdk_run(accounting: str, max_tokens: list[int]) -> tuple[list[str], float, MockAPI]:
    """The same items through the SDK drop-in, gathered at once; each answer's text or its exception's name."""
    clock = FakeClock()
    api = MockAPI(rpm=600, otpm=5_000, latency=1.0, output_tokens=500)
    transport = LimitedTransport(
        transport=api.transport(),
        clock=clock,
        seed=1,
        output_accounting=accounting,  # type: ignore[arg-type]
    )
    errors: list[anthropic.BadRequestError] = []

    async def main() -> list[str]:
        client = anthropic.AsyncAnthropic(
            api_key="k", base_url="http://api.test", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
        )

        async def one(params: dict[str, Any]) -> str:
            params = {k: v for k, v in params.items() if k != "custom_id"}
            try:
                message = await client.messages.create(**params)
            except anthropic.BadRequestError as exc:
                errors.append(exc)
                return type(exc).__name__
            return "ok" if message.content else "empty"

        async with client:
            return list(await asyncio.gather(*(one(p) for p in _requests(max_tokens))))

    outcomes = clock.run(main)
    for exc in errors:
        assert exc.status_code == 400
        assert "5,000 output tokens" in exc.message
        assert "max_tokens" in exc.message
    return outcomes, clock.now(), api


def test_sdk_reserved_accounting_answers_an_oversize_request_with_a_400_at_once() -> None:
    """Through the SDK drop-in with reserved accounting: the oversize call raises BadRequestError naming the limit
    (nothing sent for it), and the calls beside it all succeed within seconds."""
    outcomes, elapsed, api = _sdk_run("reserved", [100, 100, 100, 8_000, 100])
    assert outcomes == ["ok", "ok", "ok", "BadRequestError", "ok"]
    assert sum(api.statuses.values()) == 4
    assert elapsed < 5.0


def test_sdk_produced_accounting_admits_an_oversize_request() -> None:
    """Through the SDK drop-in where the server counts produced tokens: every call succeeds, none stalls."""
    outcomes, elapsed, api = _sdk_run("produced", [100, 100, 100, 8_000, 100])
    assert outcomes == ["ok"] * 5
    assert api.statuses[429] == 0
    assert elapsed < 5.0
