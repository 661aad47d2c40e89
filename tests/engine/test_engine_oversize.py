"""A request larger than a rate-limit bucket never stalls the queue: refused at once, or admitted and charged."""

from __future__ import annotations

from typing import Any

from mock_anthropic import MockAPI

import sluicegate
from sluicegate import Engine
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
