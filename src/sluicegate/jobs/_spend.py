"""The job's cost cap across runs: what earlier runs spent, and a hold in the store for every request in flight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import providers
from .._events import Event, RequestAdmitted, RequestCompleted
from .._models import RequestItem
from ..pricing import PriceTable
from .store import JobStore

__all__ = ["SpendLedger"]


class SpendLedger:
    """An event sink: before each attempt goes out, the store durably holds its worst cost.

    A kill then leaves the holds of the requests in flight behind, and the next run counts them as spent: the
    `--max-cost` cap is the job's, whatever happens to its runs. (Holding the worst cost is pessimistic on purpose:
    the store cannot know what a killed run's answers cost.)
    """

    def __init__(self, store: JobStore, prices: PriceTable, provider: str) -> None:
        self._store = store
        self._prices = prices
        self._provider = providers.get(provider)
        self._params: dict[str, Mapping[str, Any]] = {}  # items handed to the engine and not finished yet

    def track(self, item: RequestItem) -> RequestItem:
        """Remember an item's params until its result (the engine holds a bounded number of them)."""
        self._params[item.custom_id] = item.params
        return item

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestAdmitted):
            params = self._params.get(event.custom_id)
            if params is None:
                return
            model = self._provider.model(params)
            worst = self._prices.estimate_cost(model, event.input_tokens_estimate, self._provider.max_tokens(params))
            self._store.holds.hold(event.custom_id, worst or 0.0)
        elif isinstance(event, RequestCompleted):
            self._params.pop(event.result.custom_id, None)

    def describe(self, cap: float) -> str:
        """The job's spend against its cap, for messages."""
        recorded, lost = self._store.spent()
        text = f"${recorded:.4f} spent by this job's answers"
        if lost:
            text += f" plus up to ${lost:.4f} for requests in flight when an earlier run was killed"
        return f"{text}, of the ${cap:.2f} cap"
