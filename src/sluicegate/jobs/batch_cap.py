"""`--max-cost` over a batch job: what is spent, plus the worst cost of every item in a batch still running.

A batch is billed when its requests are processed, and its cost is known only from its results, so the cap is kept
at submission: an item goes into a batch only if the job's recorded spend, the worst cost (at the batch rate) of
every item in a batch that has not ended, and its own worst cost fit the cap. The worst cost assumes max_tokens
of output and, for a request with cache breakpoints, every input token written to the 1-hour cache (the dearest).
A batch's reservation is dropped once its results are recorded (their real costs replace it). Items that do not fit
stay pending: raising the cap and resuming submits them. What a deadline cancel sends online gets what is left of
the cap as its engine's cap (at the online price), so the cap covers the whole job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import providers
from .._models import RequestItem, Usage
from ..pricing import PriceTable
from ..tokens import heuristic_tokens
from .reader import InputProblem
from .store import JobStore
from .warmup import has_breakpoints

__all__ = ["BatchSpendCap"]


class BatchSpendCap:
    """The cap's bookkeeping for one run of a batch job (the store keeps the spend; open batches are re-counted)."""

    def __init__(self, cap: float, store: JobStore, prices: PriceTable, provider: str) -> None:
        self.cap = cap
        self._store = store
        self._prices = prices
        self._provider = providers.get(provider)
        self._spent = 0.0  # recorded answers and killed runs' holds, as of the last refresh
        self._batches: dict[str, float] = {}  # batch not ended -> worst cost of its items
        self._filling = 0.0  # worst cost of items taken into batches not submitted yet
        self.reached = False  # an item did not fit: the job stops short of the cap
        self.refresh()

    def refresh(self) -> None:
        """Read the job's spend again from the store (after results were recorded)."""
        recorded, lost = self._store.spent()
        self._spent = recorded + lost

    def worst(self, params: Mapping[str, Any]) -> float:
        """An item's worst cost at the batch rate (0 for a model without a price, as the online cap does): a request
        that places cache breakpoints may write its whole input to the 1-hour cache, the dearest input."""
        tokens = heuristic_tokens(params)
        output = self._provider.max_tokens(params)
        if has_breakpoints(params):
            written = {"cache_creation_input_tokens": tokens, "cache_creation_1h_input_tokens": tokens}
            usage = Usage(**written, output_tokens=output)
        else:
            usage = Usage(input_tokens=tokens, output_tokens=output)
        return self._prices.cost(self._provider.model(params), usage, batch=True) or 0.0

    @property
    def committed(self) -> float:
        """Spent, plus the worst cost of everything in a batch that has not ended or about to be."""
        return self._spent + sum(self._batches.values()) + self._filling

    @property
    def left(self) -> float:
        """What the cap leaves for the rest of the job."""
        return self.cap - self.committed

    def take(self, worst: float) -> bool:
        """Whether an item of this worst cost may go into a batch; if so it is counted until its batch ends."""
        if self.committed + worst > self.cap:
            self.reached = True
            return False
        self._filling += worst
        return True

    def submitted(self, batch_id: str, worst: float) -> None:
        """Items taken with this total worst cost went into this batch."""
        self._filling -= worst
        self._batches[batch_id] = self._batches.get(batch_id, 0.0) + worst

    def dropped(self, worst: float) -> None:
        """Items taken with this total worst cost made no batch (refused): they cost nothing."""
        self._filling -= worst

    def ended(self, batch_id: str) -> None:
        """A batch's results are recorded: their real costs are in the store's spend instead."""
        self._batches.pop(batch_id, None)
        self.refresh()

    def count_open(
        self,
        waiting: Mapping[str, str],
        parsed: Iterable[RequestItem | InputProblem],
        prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        """Count the batches earlier runs left running: `waiting` maps each unfinished item in one to its batch;
        `prepare` gives the params as they were submitted (with warm-up's breakpoints)."""
        for item in parsed:
            if isinstance(item, RequestItem) and item.custom_id in waiting:
                batch_id = waiting[item.custom_id]
                params = item.params if prepare is None else prepare(item.params)
                self._batches[batch_id] = self._batches.get(batch_id, 0.0) + self.worst(params)

    def describe(self) -> str:
        """The job's spend against its cap, for messages."""
        self.refresh()
        running = sum(self._batches.values())
        text = f"${self._spent:.4f} spent"
        if running:
            text += f" and up to ${running:.4f} in batches still running"
        return f"{text}, of the ${self.cap:.2f} cap" if self.cap >= 1 else f"{text}, of the ${self.cap:.4f} cap"
