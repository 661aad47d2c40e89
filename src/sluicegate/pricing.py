"""Cost from usage, with the price table kept as data (`data/prices.json`), replaceable by the user's own."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ._models import Usage

__all__ = ["Price", "PriceTable", "cost", "estimate_cost", "price_for"]

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


class PriceTable:
    """Prices by model id; dated ids (`claude-haiku-4-5-20251001`) resolve to their longest known prefix."""

    def __init__(self, models: dict[str, Price], batch_discount: float = 0.5) -> None:
        self.models = models
        self.batch_discount = batch_discount
        self._prefixes = sorted(models, key=len, reverse=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceTable:
        models = {}
        for name, row in data["models"].items():
            base = float(row["input"])
            models[name] = Price(
                input=base,
                output=float(row["output"]),
                cache_write_5m=float(row.get("cache_write_5m", base)),
                cache_write_1h=float(row.get("cache_write_1h", base)),
                cache_read=float(row.get("cache_read", base)),
            )
        return cls(models, float(data.get("batch_discount", 0.5)))

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def price_for(self, model: str) -> Price | None:
        found = self.models.get(model)
        if found is not None:
            return found
        for prefix in self._prefixes:
            if model.startswith(prefix + "-") and _ALIAS_SUFFIX.fullmatch(model[len(prefix) + 1 :]):
                return self.models[prefix]
        return None

    def cost(
        self, model: str, usage: Usage, *, batch: bool = False, cache_ttl: Literal["5m", "1h"] = "5m"
    ) -> float | None:
        price = self.price_for(model)
        if price is None:
            return None
        write = price.cache_write_5m if cache_ttl == "5m" else price.cache_write_1h
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_input_tokens * write
            + usage.cache_read_input_tokens * price.cache_read
        ) / _MTOK
        return total * self.batch_discount if batch else total

    def estimate_cost(self, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
        return self.cost(model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), batch=batch)


@cache
def default_table() -> PriceTable:
    text = resources.files("sluicegate").joinpath("data/prices.json").read_text(encoding="utf-8")
    return PriceTable.from_json(json.loads(text))


def price_for(model: str) -> Price | None:
    return default_table().price_for(model)


def cost(model: str, usage: Usage, *, batch: bool = False, cache_ttl: Literal["5m", "1h"] = "5m") -> float | None:
    """USD for `usage` on `model`; None when the model's price is unknown (show "unknown", never a fake 0)."""
    return default_table().cost(model, usage, batch=batch, cache_ttl=cache_ttl)


def estimate_cost(model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
    """The most a request can cost, for reserving spend before sending it."""
    return default_table().estimate_cost(model, input_tokens, output_tokens, batch=batch)
