"""The route planner: each route's cost and duration, and auto's choice against a deadline (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.jobs.estimate import Estimate, ModelEstimate
from sluicegate.jobs.planner import CacheEstimate, Plan, RouteEstimate, parse_duration, plan_routes
from sluicegate.pricing import default_table

# The seed's example: 100,000 requests of 2,000 input tokens and 500 output tokens on Sonnet 4.6.
SEED = Estimate(
    models={
        "claude-sonnet-4-6": ModelEstimate(
            requests=100_000, input_tokens=200_000_000, max_output_tokens=50_000_000, expected_output_tokens=50_000_000
        )
    }
)
TIER4: dict[str, Any] = {"rpm": 4000.0, "itpm": 2_000_000.0, "otpm": 400_000.0}


def _route(plan: Plan, name: str) -> RouteEstimate:
    return next(r for r in plan.routes if r.route == name)


def test_the_seed_example_costs_1350_online_and_half_in_batch() -> None:
    """100k x (2,000 in + 500 out) on Sonnet 4.6 at $3/$15 per MTok: $600 + $750 = $1,350 online, $675 batched."""
    plan = plan_routes(SEED, default_table(), provider="anthropic", **TIER4)
    online, batch = _route(plan, "online"), _route(plan, "batch")
    assert online.cost == pytest.approx(1350.0)
    assert batch.cost == pytest.approx(675.0)
    assert online.seconds == pytest.approx(7500.0)  # 125 min: output tokens bind
    assert plan.choice == "batch"


def test_cache_reads_are_priced_at_a_tenth_and_freed_from_the_input_limit() -> None:
    """With 1,500 of the 2,000 input tokens read from the cache, input costs fall and input no longer binds."""
    cache = CacheEstimate(read={"claude-sonnet-4-6": 150_000_000}, written={"claude-sonnet-4-6": 1_500})
    plan = plan_routes(SEED, default_table(), provider="anthropic", cache=cache, **TIER4)
    online = _route(plan, "online")
    # (50M - 1,500) uncached x $3 + 150M reads x $0.30 + 1,500 writes x $3.75 + 50M out x $15
    assert online.cost == pytest.approx(150 - 0.0045 + 45 + 0.005625 + 750)
    uncached = _route(
        plan_routes(SEED, default_table(), provider="anthropic", rpm=4000.0, itpm=1e6, otpm=None), "online"
    )
    cached = _route(
        plan_routes(SEED, default_table(), provider="anthropic", cache=cache, rpm=4000.0, itpm=1e6, otpm=None), "online"
    )
    assert uncached.seconds == pytest.approx(200 * 60)  # 200M input at 1M a minute
    assert cached.seconds == pytest.approx(50 * 60)  # reads do not count: requests bind


@pytest.mark.parametrize(
    ("deadline", "choice", "fragment"),
    [
        (None, "batch", "no deadline"),
        (6 * 3600.0, "batch", "cheapest route that meets"),
        (1800.0, "online", "no route is known to meet"),  # online needs 125 min, a batch may need an hour
    ],
)
def test_auto_takes_the_cheapest_route_that_meets_the_deadline(
    deadline: float | None, choice: str, fragment: str
) -> None:
    """No deadline: the cheapest. Room for a batch and its online fallback: batch. No room for either: online."""
    plan = plan_routes(SEED, default_table(), provider="anthropic", deadline=deadline, **TIER4)
    assert plan.choice == choice
    assert fragment in plan.why


def test_a_tight_deadline_prices_the_batch_between_the_two() -> None:
    """When the batch has less than its typical hour before it must be cancelled, part of it is expected online."""
    plan = plan_routes(SEED, default_table(), provider="anthropic", deadline=9000.0, **TIER4)  # 25 min to spare
    batch = _route(plan, "batch")
    assert batch.cost == pytest.approx((1350.0 + 675.0) / 2)
    assert batch.cost_max == pytest.approx(1350.0)
    assert batch.seconds == 3600.0
    assert plan.choice == "batch"


def test_openai_has_a_flex_route_at_batch_prices() -> None:
    """OpenAI models get a flex row: batch prices, slower than online."""
    est = Estimate(models={"gpt-4o-mini": ModelEstimate(100, 100_000, 10_000, 10_000)})
    plan = plan_routes(est, default_table(), provider="openai", rpm=500.0, itpm=None, otpm=None)
    flex, batch, online = _route(plan, "flex"), _route(plan, "batch"), _route(plan, "online")
    assert flex.cost == pytest.approx(batch.cost)
    assert online.seconds is not None
    assert flex.seconds == pytest.approx(2 * online.seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h", 21600.0), ("90m", 5400.0), ("1h30m", 5400.0), ("2d", 172800.0), ("45s", 45.0), ("10", 10.0)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    """Days, hours, minutes and seconds, combined or alone; a bare number is seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "6 hours", "x6h"])
def test_bad_durations_are_refused(text: str) -> None:
    """Anything else is a ValueError naming the text."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
