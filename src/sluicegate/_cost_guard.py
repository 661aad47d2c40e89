"""The cost guard: what was spent, what is reserved in flight, and whether admitting more could pass the cap."""

from __future__ import annotations

import logging
from collections import Counter

from ._budget import CostBudget
from ._models import Usage
from .pricing import PriceTable

__all__ = ["CostGuard"]

log = logging.getLogger("sluicegate")


class CostGuard:
    """Every cost figure (results, statistics, the `max_cost` cap) comes from one price table, through here.

    `budget` holds each item's likely and worst cost from admission until the item ends (`CostBudget` says
    whether the next may go, must wait for answers in flight, or must stop).
    """

    def __init__(self, prices: PriceTable, max_cost: float | None) -> None:
        self.prices = prices
        self.max_cost = max_cost
        self.budget = CostBudget(max_cost)
        self.spent = 0.0
        self.unpriced: Counter[str] = Counter()  # successes by model whose price is not in the table

    def charge(self, model: str, usage: Usage) -> float | None:
        """Count a success's real cost; None (and one warning per model) when the model has no price."""
        cost = self.prices.cost(model, usage)
        if cost is None:
            if not self.unpriced[model]:
                log.warning("no price for model %r in the price table: its cost is unknown", model)
            self.unpriced[model] += 1
            return None
        self.spent += cost
        self.budget.spend(cost)
        return cost
