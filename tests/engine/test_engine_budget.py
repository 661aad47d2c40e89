"""The cost cap: money only reserved by requests in flight never stops a run; the final spend stays within the cap
plus one request's worst cost (engine on the fake clock, and the pure bookkeeping)."""

from __future__ import annotations

from typing import Any

import pytest
from mock_anthropic import MockAPI

import sluicegate
from sluicegate import Engine
from sluicegate._budget import CostBudget
from sluicegate.testing import FakeClock

# claude-haiku-4-5: $1 in / $5 out per million tokens. max_tokens 4,000 makes the worst case $0.02 a request, while
# an answer really uses 10 output tokens (about $0.00006 with its input).
WORST = 4_000 * 5 / 1e6


def _requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r{i}",
            "model": "claude-haiku-4-5",
            "max_tokens": 4_000,
            "messages": [{"role": "user", "content": f"prompt number {i}"}],
        }
        for i in range(n)
    ]


def test_a_cap_far_below_the_worst_cases_in_flight_is_spent_not_abandoned() -> None:
    """Cap $0.05 with $0.02 worst case a request: the run goes on until the cap is nearly spent, never past cap + 1."""
    clock = FakeClock()
    api = MockAPI(latency=1.0, output_tokens=10)
    cap = 0.05

    async def main() -> sluicegate.EngineStatistics:
        async with Engine(
            api_key="sk-test", base_url="http://api.test", transport=api.transport(), clock=clock, seed=1, max_cost=cap
        ) as engine:
            with pytest.raises(sluicegate.BudgetExceededError, match=r"cost cap of \$0.05 is reached: \$0.0\d+ spent"):
                async for _ in engine.as_completed(_requests(2_000)):
                    pass
            return engine.statistics()

    stats = clock.run(main)
    assert 0.049 <= stats.cost <= cap + WORST
    assert stats.reserved_cost == 0
    assert stats.succeeded == api.requests  # every request sent was answered and counted


@pytest.mark.parametrize(
    ("spent", "held", "worst", "likely", "expected"),
    [
        (0.0, [], 0.3, 0.01, "admit"),  # nothing in flight: one request may overshoot by its worst case
        (0.9, [], 0.3, 0.05, "admit"),
        (0.96, [], 0.3, 0.05, "stop"),  # its likely cost no longer fits, and nothing can settle
        (0.0, [(0.6, 0.01), (0.6, 0.01)], 0.3, 0.01, "wait"),  # worst cases in flight pass the cap: wait for them
        (0.0, [(0.4, 0.01)], 0.3, 0.01, "admit"),
        (0.5, [(0.1, 0.45)], 0.3, 0.1, "wait"),  # likely costs in flight pass the cap
    ],
)
def test_verdicts(spent: float, held: list[tuple[float, float]], worst: float, likely: float, expected: str) -> None:
    """Admit while both the likely and the in-flight worst case fit a $1 cap; wait while answers can settle."""
    budget = CostBudget(1.0)
    budget.spend(spent)
    for key, (w, lk) in enumerate(held):
        budget.reserve(key, w, lk)
    assert budget.verdict(worst, likely) == expected


def test_release_wakes_waiters_and_clears_the_hold() -> None:
    """Releasing the last hold leaves nothing reserved, so a stopped-looking budget admits again."""
    budget = CostBudget(1.0)
    budget.reserve(1, 2.0, 0.1)
    assert budget.verdict(0.5, 0.1) == "wait"
    budget.spend(0.1)
    budget.release(1)
    assert budget.reserved == 0
    assert budget.verdict(0.5, 0.1) == "admit"
