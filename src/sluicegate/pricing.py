"""Cost from usage, with the price table kept as data (`data/prices.json`), replaceable by the user's own."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ._exceptions import ConfigError
from ._models import Usage

__all__ = ["Price", "PriceTable", "cost", "default_table", "estimate_cost", "load_prices", "price_for"]

_MTOK = 1_000_000
# Dated snapshots and "-0"/"-latest" aliases share their model's price; other suffixes are different models.
_ALIAS_SUFFIX = re.compile(r"\d{8}|\d{4}-\d{2}-\d{2}|0|latest")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cache writes default to input price when a provider has none."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    # Notes, not prices: two entries with the same numbers are the same price.
    as_of: str | None = field(default=None, compare=False)  # when the price was copied from its source
    source: str | None = field(default=None, compare=False)  # where it came from


def _price(value: Any, where: str) -> float:
    # bool is an int to Python, but `true` in a price file is a mistake, not 1 USD.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: a price must be a number of USD per million tokens, >= 0 (got {value!r})")
    return float(value)


def _note(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{where}: must be a string (got {value!r})")


class PriceTable:
    """Prices by model id; dated ids (`claude-haiku-4-5-20251001`) resolve to their longest known prefix."""

    def __init__(self, models: dict[str, Price], batch_discount: float = 0.5) -> None:
        self.models = models
        self.batch_discount = batch_discount
        self._prefixes = sorted(models, key=len, reverse=True)

    @classmethod
    def from_json(cls, data: Any, *, origin: str = "price table") -> PriceTable:
        """Build a table from parsed JSON; a ConfigError names the entry and field that is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ConfigError(f'{origin}: expected an object with a "models" object')
        models = {}
        for name, row in data["models"].items():
            where = f"{origin}: models.{name}"
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected an object of prices")
            for required in ("input", "output"):
                if required not in row:
                    raise ConfigError(f'{where}: missing "{required}"')
            base = _price(row["input"], f"{where}.input")
            models[name] = Price(
                input=base,
                output=_price(row["output"], f"{where}.output"),
                cache_write_5m=_price(row.get("cache_write_5m", base), f"{where}.cache_write_5m"),
                cache_write_1h=_price(row.get("cache_write_1h", base), f"{where}.cache_write_1h"),
                cache_read=_price(row.get("cache_read", base), f"{where}.cache_read"),
                as_of=_note(row.get("as_of"), f"{where}.as_of"),
                source=_note(row.get("source"), f"{where}.source"),
            )
        discount = _price(data.get("batch_discount", 0.5), f"{origin}: batch_discount")
        if discount > 1:
            raise ConfigError(f"{origin}: batch_discount is a multiplier in [0, 1] (got {discount!r})")
        return cls(models, discount)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """Read a user's own price file (the shipped `data/prices.json` shows the format)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"cannot read price table {path}: {exc}") from exc
        return cls.from_json(data, origin=str(path))

    def price_for(self, model: str) -> Price | None:
        """The price of `model`, of its undated name for a dated or -0/-latest alias, or None."""
        found = self.models.get(model)
        if found is not None:
            return found
        for prefix in self._prefixes:
            if model.startswith(prefix + "-") and _ALIAS_SUFFIX.fullmatch(model[len(prefix) + 1 :]):
                return self.models[prefix]
        return None

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        """USD for `usage`; None for a model without a price.

        Cache writes are priced by their TTL: `usage.cache_creation_1h_input_tokens` at the 1-hour write price,
        the rest of `cache_creation_input_tokens` at the 5-minute one.
        """
        price = self.price_for(model)
        if price is None:
            return None
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_5m_input_tokens * price.cache_write_5m
            + usage.cache_creation_1h_input_tokens * price.cache_write_1h
            + usage.cache_read_input_tokens * price.cache_read
        ) / _MTOK
        return total * self.batch_discount if batch else total

    def at_batch_rate(self) -> PriceTable:
        """This table with every price at the batch rate (batch_discount applied): for what is billed like a
        batch without being one, OpenAI's flex tier, so that an engine's costs and cost cap count it rightly."""
        d = self.batch_discount
        models = {
            name: replace(
                p,
                input=p.input * d,
                output=p.output * d,
                cache_write_5m=p.cache_write_5m * d,
                cache_write_1h=p.cache_write_1h * d,
                cache_read=p.cache_read * d,
            )
            for name, p in self.models.items()
        }
        return PriceTable(models, batch_discount=1.0)

    def estimate_cost(self, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
        """USD for that many uncached input and output tokens; None for a model without a price."""
        return self.cost(model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), batch=batch)


@cache
def default_table() -> PriceTable:
    """The shipped table (package data), read once."""
    text = resources.files("sluicegate").joinpath("data/prices.json").read_text(encoding="utf-8")
    return PriceTable.from_json(json.loads(text))


def load_prices(prices: PriceTable | str | os.PathLike[str] | None) -> PriceTable:
    """A table as the engine and CLI take it: a PriceTable, a price file's path, or None for the shipped table."""
    if prices is None:
        return default_table()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, (str, os.PathLike)):
        return PriceTable.load(prices)
    raise ConfigError(f"prices must be a PriceTable, a path to a price file or None (got {type(prices).__name__})")


def price_for(model: str) -> Price | None:
    """The shipped table's price for `model`, or None."""
    return default_table().price_for(model)


def cost(model: str, usage: Usage, *, batch: bool = False) -> float | None:
    """USD for `usage` on `model`; None when the model's price is unknown (show "unknown", never a fake 0)."""
    return default_table().cost(model, usage, batch=batch)


def estimate_cost(model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
    """The most a request can cost, for reserving spend before sending it."""
    return default_table().estimate_cost(model, input_tokens, output_tokens, batch=batch)
