"""The cost guard: what was spent, what is reserved in flight, and whether admitting more could pass the cap."""

from __future__ import annotations

import logging
from collections import Counter

from ._models import Usage
from .pricing import PriceTable

__all__ = ["CostGuard"]

log = logging.getLogger("sluicegate")


class CostGuard:
    """Every cost figure (results, statistics, the `max_cost` cap) comes from one price table, through here.

    The cap holds because admission counts the worst case of everything in flight (input estimate plus
    `max_tokens` of output) on top of what was spent.
    """

    def __init__(self, prices: PriceTable, max_cost: float | None) -> None:
        self.prices = prices
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        self.unpriced: Counter[str] = Counter()  # successes by model whose price is not in the table

    def refusal(self, model: str, input_tokens: int, max_tokens: int) -> str | None:
        """Why this request may not be admitted under the cap (None when it may, or when there is no cap)."""
        if self.max_cost is None:
            return None
        worst = self.prices.estimate_cost(model, input_tokens, max_tokens)
        if worst is None:
            return f"no price is known for model {model!r}, so the cost cap cannot be enforced"
        if self.spent + self.reserved + worst > self.max_cost:
            return (
                f"stopped before the cost cap of ${self.max_cost:.2f}: spent ${self.spent:.4f}, "
                f"${self.reserved:.4f} reserved in flight"
            )
        return None

    def reserve(self, model: str, input_tokens: int, max_tokens: int) -> float:
        """Hold the worst case of one attempt in flight; give the returned amount back with `unreserve`."""
        worst = self.prices.estimate_cost(model, input_tokens, max_tokens) or 0.0
        self.reserved += worst
        return worst

    def unreserve(self, amount: float) -> None:
        self.reserved -= amount

    def charge(self, model: str, usage: Usage) -> float | None:
        """Count a success's real cost; None (and one warning per model) when the model has no price."""
        cost = self.prices.cost(model, usage)
        if cost is None:
            if not self.unpriced[model]:
                log.warning("no price for model %r in the price table: its cost is unknown", model)
            self.unpriced[model] += 1
            return None
        self.spent += cost
        return cost
