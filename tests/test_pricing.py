"""Costs from usage with the shipped price table and with a user's own file; model ids and aliases."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from sluicegate._exceptions import ConfigError
from sluicegate._models import Usage
from sluicegate.pricing import Price, PriceTable, cost, default_table, estimate_cost, price_for

# 1,000 input, 500 output, 2,000 cache-write and 10,000 cache-read tokens.
USAGE = Usage(input_tokens=1000, output_tokens=500, cache_creation_input_tokens=2000, cache_read_input_tokens=10000)
# The same, with every cache write made with the 1-hour TTL.
USAGE_1H = Usage(1000, 500, 2000, 10000, cache_creation_1h_input_tokens=2000)


@pytest.mark.parametrize(
    ("model", "standard", "one_hour", "batch"),
    [
        # 1000 x 1 + 500 x 5 + 2000 x 1.25 (2 for 1h) + 10000 x 0.10, per million
        ("claude-haiku-4-5", 0.007, 0.0085, 0.0035),
        ("claude-haiku-4-5-20251001", 0.007, 0.0085, 0.0035),
        # 1000 x 3 + 500 x 15 + 2000 x 3.75 (6 for 1h) + 10000 x 0.30
        ("claude-sonnet-4-6", 0.021, 0.0255, 0.0105),
        ("claude-sonnet-4-5-20250929", 0.021, 0.0255, 0.0105),
        # 1000 x 15 + 500 x 75 + 2000 x 18.75 (30 for 1h) + 10000 x 1.50
        ("claude-opus-4-1", 0.105, 0.1275, 0.0525),
        ("claude-opus-4-1-20250805", 0.105, 0.1275, 0.0525),
    ],
)
def test_anthropic_costs_with_cache(model: str, standard: float, one_hour: float, batch: float) -> None:
    """Exact USD for input, output, 5m/1h cache writes and cache reads; batch is half price."""
    assert cost(model, USAGE) == standard
    assert cost(model, USAGE_1H) == one_hour
    assert cost(model, USAGE, batch=True) == batch


def test_batch_discount_applies_to_1h_writes_too() -> None:
    """Batch and the 1-hour cache TTL combine: half of the 1h price."""
    assert cost("claude-sonnet-4-6", USAGE_1H, batch=True) == 0.01275


@pytest.mark.parametrize(
    ("model", "write_5m", "write_1h", "expected"),
    [
        # Haiku 4.5 writes: 1.25 (5m) and 2 (1h) USD per million.
        ("claude-haiku-4-5", 1_000_000, 0, 1.25),
        ("claude-haiku-4-5", 0, 1_000_000, 2.0),
        ("claude-haiku-4-5", 600_000, 400_000, 0.75 + 0.8),
        ("claude-haiku-4-5", 0, 0, 0.0),
        # Sonnet 4.6: 3.75 and 6.
        ("claude-sonnet-4-6", 200_000, 800_000, 0.75 + 4.8),
        # Opus 4.1: 18.75 and 30.
        ("claude-opus-4-1-20250805", 1000, 3000, 0.01875 + 0.09),
        # OpenAI has no cache-write price: both TTLs cost the input price.
        ("gpt-4o", 500_000, 500_000, 2.5),
    ],
)
def test_cache_writes_are_priced_by_ttl(model: str, write_5m: int, write_1h: int, expected: float) -> None:
    """The 1h part of the cache writes costs the 1h write price, the rest the 5m price."""
    usage = Usage(cache_creation_input_tokens=write_5m + write_1h, cache_creation_1h_input_tokens=write_1h)
    assert usage.cache_creation_5m_input_tokens == write_5m
    assert cost(model, usage) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(), 0.0),
        (Usage(input_tokens=1_000_000), 1.0),
        (Usage(output_tokens=1_000_000), 5.0),
        (Usage(cache_creation_input_tokens=1_000_000), 1.25),
        (Usage(cache_read_input_tokens=1_000_000), 0.1),
        (Usage(cache_creation_input_tokens=1_000_000, cache_creation_1h_input_tokens=1_000_000), 2.0),
    ],
)
def test_each_usage_field_has_its_own_price(usage: Usage, expected: float) -> None:
    """One million tokens of each kind cost exactly the Haiku 4.5 list price of that kind."""
    assert cost("claude-haiku-4-5", usage) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-haiku-4-5", Price(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("claude-haiku-4-5-20251001", Price(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("claude-sonnet-4-0", Price(3.0, 15.0, 3.75, 6.0, 0.3)),
        ("claude-sonnet-4-20250514", Price(3.0, 15.0, 3.75, 6.0, 0.3)),
        ("claude-sonnet-4-5-latest", Price(3.0, 15.0, 3.75, 6.0, 0.3)),
        ("claude-opus-4-0", Price(15.0, 75.0, 18.75, 30.0, 1.5)),
        ("claude-opus-4-6", Price(5.0, 25.0, 6.25, 10.0, 0.5)),
        ("claude-sonnet-5", Price(2.0, 10.0, 2.5, 4.0, 0.2)),
        ("gpt-4o-2024-08-06", Price(2.5, 10.0, 2.5, 2.5, 1.25)),  # no cache-write price: input price
        ("gpt-4o-mini-2024-07-18", Price(0.15, 0.6, 0.15, 0.15, 0.075)),
        ("claude-opus-4-9", None),  # a different model, not an alias of claude-opus-4
        ("claude-haiku-4-5-2025", None),
        ("claude-3-5-haiku-latest", None),
        ("my-finetune", None),
        ("", None),
    ],
)
def test_model_ids_and_aliases(model: str, expected: Price | None) -> None:
    """Dated, -0 and -latest ids share their model's price; other suffixes and unknown models have none."""
    assert price_for(model) == expected


def test_unknown_model_costs_none() -> None:
    """An unknown model's cost is None (shown as unknown), never a fake 0."""
    assert cost("claude-unknown-9", USAGE) is None
    assert estimate_cost("claude-unknown-9", 10, 10) is None


def test_estimate_cost() -> None:
    """The pre-send estimate prices input and output tokens, halved for batches."""
    assert estimate_cost("claude-sonnet-4-6", 1000, 1000) == 0.018
    assert estimate_cost("claude-sonnet-4-6", 1000, 1000, batch=True) == 0.009


def test_price_table_load_user_file(tmp_path: Path) -> None:
    """A user's JSON file replaces the table: its own models, defaults for missing cache prices, its discount."""
    path = tmp_path / "prices.json"
    data = {
        "batch_discount": 0.4,
        "models": {
            "acme-large": {"input": 2, "output": 8, "cache_write_5m": 2.5, "cache_write_1h": 4, "cache_read": 0.2},
            "acme-small": {"input": 0.5, "output": 1.5},
        },
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    table = PriceTable.load(path)
    assert table.price_for("acme-small") == Price(0.5, 1.5, 0.5, 0.5, 0.5)
    assert table.price_for("acme-large-20260101") == Price(2.0, 8.0, 2.5, 4.0, 0.2)
    assert table.price_for("claude-haiku-4-5") is None
    assert table.cost("acme-large", USAGE) == 0.013  # 2000 + 4000 + 5000 + 2000 per million
    assert table.cost("acme-large", USAGE, batch=True) == 0.0052
    assert table.estimate_cost("acme-small", 2_000_000, 1_000_000) == 2.5


def test_price_table_default_discount(tmp_path: Path) -> None:
    """A user file without batch_discount gets the usual 50%."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"m": {"input": 1, "output": 1}}}), encoding="utf-8")
    assert PriceTable.load(str(path)).batch_discount == 0.5


def test_shipped_data_file_is_package_data() -> None:
    """prices.json is readable through importlib.resources and lists the models the docs price."""
    text = resources.files("sluicegate").joinpath("data/prices.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["batch_discount"] == 0.5
    assert {"claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-1", "gpt-4o"} <= set(data["models"])
    table = PriceTable.from_json(data)
    for name, price in table.models.items():
        assert price.output >= price.input > price.cache_read > 0, name
        assert price.cache_write_1h >= price.cache_write_5m >= price.input, name


def test_every_shipped_price_says_where_and_when() -> None:
    """Each shipped entry carries its source and as_of note; OpenAI rows say they must be checked."""
    for name, price in PriceTable.from_json(json.loads(_shipped_text())).models.items():
        assert price.source, name
        assert price.as_of, name
        if name.startswith("gpt-"):
            assert "check" in price.source, name
    opus5 = price_for("claude-opus-5")
    assert opus5 is not None
    assert opus5.source is not None
    assert opus5.source.startswith("secondary")


def _shipped_text() -> str:
    return resources.files("sluicegate").joinpath("data/prices.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read price table"),
        ("[1, 2]", 'expected an object with a "models" object'),
        ("{}", 'expected an object with a "models" object'),
        ('{"models": {"m": 3}}', "models.m: expected an object of prices"),
        ('{"models": {"m": {"input": 1}}}', 'models.m: missing "output"'),
        ('{"models": {"m": {"input": "1", "output": 1}}}', "models.m.input: a price must be"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "models.m.input: a price must be"),
        ('{"models": {"m": {"input": 1, "output": true}}}', "models.m.output: a price must be"),
        ('{"models": {"m": {"input": 1, "output": 1, "cache_read": NaN}}}', "models.m.cache_read: a price must be"),
        ('{"models": {"m": {"input": 1, "output": 1, "as_of": 2025}}}', "models.m.as_of: must be a string"),
        ('{"batch_discount": 2, "models": {}}', "batch_discount is a multiplier"),
        ('{"batch_discount": -0.5, "models": {}}', "batch_discount: a price must be"),
    ],
)
def test_a_bad_user_file_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    """A broken price file raises ConfigError naming the file and the wrong entry, never a bare KeyError."""
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        PriceTable.load(path)
    assert str(path) in str(info.value)


def test_a_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    """A price file that does not exist is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError, match="cannot read price table"):
        PriceTable.load(tmp_path / "absent.json")


def test_a_table_at_the_batch_rate_prices_every_token_kind_as_a_batch_does() -> None:
    """Flex answers are billed like batch ones: the derived table's plain cost is the original's batch cost."""
    table = default_table()
    usage = Usage(
        input_tokens=1000, output_tokens=500, cache_read_input_tokens=4000, cache_creation_input_tokens=2000,
        cache_creation_1h_input_tokens=800,
    )  # fmt: skip
    flex = table.at_batch_rate()
    assert flex.cost("claude-sonnet-4-5", usage) == pytest.approx(table.cost("claude-sonnet-4-5", usage, batch=True))
    standard = table.cost("gpt-4o-mini", usage)
    assert standard is not None
    assert flex.cost("gpt-4o-mini", usage) == pytest.approx(standard * table.batch_discount)
    assert flex.cost("no-such-model", usage) is None
