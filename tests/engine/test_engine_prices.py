"""The engine's price table: a user's own table (object or file) drives result costs, statistics and the cost cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mock_anthropic import MockAPI

import sluicegate
from sluicegate import ConfigError, Engine, Price, PriceTable, Usage
from sluicegate.testing import FakeClock

# A model the shipped table does not know, priced at $2 in / $10 out per million tokens.
ACME = PriceTable({"acme-1": Price(input=2.0, output=10.0, cache_write_5m=2.5, cache_write_1h=4.0, cache_read=0.2)})


def _requests(n: int, model: str = "acme-1") -> list[dict[str, Any]]:
    return [
        {"custom_id": f"r{i}", "model": model, "max_tokens": 16, "messages": [{"role": "user", "content": f"p{i}"}]}
        for i in range(n)
    ]


def _engine(api: MockAPI, clock: FakeClock, **kwargs: Any) -> Engine:
    return Engine(api_key="sk-test", base_url="http://api.test", transport=api.transport(), clock=clock, **kwargs)


def _map(prices: Any, n: int = 5, model: str = "acme-1") -> tuple[list[sluicegate.Result], sluicegate.EngineStatistics]:
    clock = FakeClock()
    api = MockAPI(latency=1.0, output_tokens=10)

    async def main() -> tuple[list[sluicegate.Result], sluicegate.EngineStatistics]:
        async with _engine(api, clock, prices=prices) as engine:
            results = await engine.map(_requests(n, model))
            return results, engine.statistics()

    return clock.run(main)


def _acme_cost(usage: Usage) -> float:
    return (usage.input_tokens * 2.0 + usage.output_tokens * 10.0) / 1e6


def test_a_price_table_object_prices_every_result_and_the_statistics() -> None:
    """With prices=PriceTable, each result costs the table's price of its usage; statistics sum them."""
    results, stats = _map(ACME)
    assert all(r.ok for r in results)
    assert [r.cost for r in results] == [_acme_cost(r.usage) for r in results]
    assert stats.cost == pytest.approx(sum(_acme_cost(r.usage) for r in results), rel=1e-12)
    assert stats.unpriced == {}


@pytest.mark.parametrize("as_str", [False, True])
def test_a_price_file_path_is_read(tmp_path: Path, as_str: bool) -> None:
    """prices may be a path (str or Path) to a JSON file in the shipped format."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"acme-1": {"input": 2, "output": 10}}}), encoding="utf-8")
    results, _ = _map(str(path) if as_str else path, n=2)
    assert [r.cost for r in results] == [_acme_cost(r.usage) for r in results]


def test_a_bad_price_file_fails_at_construction_naming_file_and_field(tmp_path: Path) -> None:
    """A broken price file is a ConfigError from Engine(...), naming the file and the wrong field."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"acme-1": {"input": 2}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r'prices\.json: models\.acme-1: missing "output"'):
        Engine(api_key="k", prices=path)
    with pytest.raises(ConfigError, match="must be a PriceTable"):
        Engine(api_key="k", prices=3)  # type: ignore[arg-type]


def test_a_model_without_a_price_costs_none_and_is_counted() -> None:
    """An answer whose model has no price has cost None (not 0) and is counted by model in the statistics."""
    results, stats = _map(None, n=3)  # the shipped table has no acme-1
    assert all(r.ok and r.cost is None for r in results)
    assert stats.cost == 0.0
    assert stats.unpriced == {"acme-1": 3}


def test_the_cost_cap_uses_the_given_table() -> None:
    """max_cost is enforced with the user's prices: a model unknown to the shipped table runs, up to the cap."""
    clock = FakeClock()
    api = MockAPI(latency=1.0, output_tokens=16)
    seen: list[sluicegate.Result] = []

    async def main() -> None:
        # Worst case per request ~ (3 in x $2 + 16 out x $10) / 1e6 = ~$0.000166: a $0.001 cap admits a handful.
        async with _engine(api, clock, prices=ACME, max_cost=0.001) as engine:

            async def consume() -> None:
                async for result in engine.as_completed(_requests(100)):
                    seen.append(result)

            with pytest.raises(sluicegate.BudgetExceededError, match="cost cap"):
                await consume()
            stats = engine.statistics()
            assert 0 < stats.cost <= 0.001
            assert 0 < stats.succeeded < 100

    clock.run(main)
    assert all(r.cost is not None for r in seen if r.ok)


def test_the_cost_cap_refuses_a_model_the_table_does_not_price() -> None:
    """With the shipped table and a cap, an unknown model stops the run: the cap cannot be enforced."""
    clock = FakeClock()
    api = MockAPI(latency=1.0)

    async def main() -> None:
        async with _engine(api, clock, max_cost=1.0) as engine:
            with pytest.raises(sluicegate.BudgetExceededError, match="no price is known for model 'acme-1'"):
                async for _ in engine.as_completed(_requests(3)):
                    pass

    clock.run(main)
    assert api.requests == 0
