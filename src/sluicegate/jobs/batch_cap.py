"""The job's `--max-cost` on the batch route: each request's worst batch cost is held before its batch is created.

A batch cannot be stopped half way, so the cap is kept at creation: a request goes into a batch only if what the
job has spent (every recorded answer, at the price it was billed), plus what it holds for requests in batches
that have not answered yet, plus this request's worst cost at the batch price (its estimated input and all of
its `max_tokens`), stays within the cap. The holds are written in the same commit as the create intent, so a kill
or Ctrl-C cannot lift the cap: a resumed job counts the batches still running at their held cost until their
answers replace the holds with what they really cost. Once one request does not fit, no later one is sent in this
pass (as online, "the next request would not fit"); after the running batches end, what they did not spend of
their holds is room again and the job tries once more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .. import providers
from ..pricing import PriceTable
from ..tokens import heuristic_tokens
from ._db import EntryKind, ItemState
from .store import JobStore

__all__ = ["BatchCap"]

# Holds live in `meta` under this prefix (no schema change), one row per request, keyed by its custom_id. They are
# told apart from the online route's holds (`hold:`), which a new run settles as lost spend.
_HOLD, _HOLD_END = "batch-hold:", "batch-hold;"


class BatchCap:
    """Admits requests into batches while the job's spend, held and real, stays within `cap` (USD)."""

    def __init__(self, store: JobStore, cap: float, prices: PriceTable, provider: str) -> None:
        self._store = store
        self.cap = cap
        self._prices = prices
        self._provider = providers.get(provider)
        self._total: float | None = None  # committed spend plus what this pass admitted; None: read it again
        self._worst: dict[str, float] = {}  # admitted in this pass, not held in the store yet
        self.refused = 0  # requests this run did not send because they could pass the cap
        self.next_worst: float | None = None  # the worst cost of the first request that did not fit
        self.unpriced: Counter[str] = Counter()  # requests not sent: their model has no price to hold

    def held(self) -> float:
        """What the store holds for requests in batches that have not answered yet."""
        row = self._store.db.conn.execute(
            "SELECT total(CAST(m.value AS REAL)) FROM meta AS m JOIN entries AS e"
            f" ON e.custom_id = substr(m.key, {len(_HOLD) + 1}) AND e.kind = {EntryKind.ITEM:d}"
            f" WHERE m.key >= ? AND m.key < ? AND e.state = {ItemState.PENDING:d} AND e.batch IS NOT NULL",
            (_HOLD, _HOLD_END),
        ).fetchone()
        return float(row[0])

    def committed(self) -> float:
        """The job's spend against the cap: recorded answers, lost holds of killed online runs, and holds."""
        recorded, lost = self._store.spent()
        return recorded + lost + self.held()

    def new_pass(self) -> None:
        """Start a submit pass: read the spend from the store again and admit from the first request on."""
        self._total = None
        self.refused = 0
        self.next_worst = None
        self.unpriced.clear()

    def admit(self, custom_id: str, params: Mapping[str, Any]) -> bool:
        """Whether this request may go into a batch; counts it against the cap if so."""
        model = self._provider.model(params)
        worst = self._prices.estimate_cost(
            model, heuristic_tokens(params), self._provider.max_tokens(params), batch=True
        )
        if worst is None:  # nothing to hold it against: sending it could pass the cap unseen
            self.unpriced[model] += 1
            return False
        if self._total is None:
            self._total = self.committed()
        if self.next_worst is not None or self._total + worst > self.cap:
            self.refused += 1
            if self.next_worst is None:
                self.next_worst = worst
            return False
        self._total += worst
        self._worst[custom_id] = worst
        return True

    def hold(self, custom_ids: Iterable[str]) -> None:
        """Write the holds of a batch about to be created into the open transaction (the intent's commit)."""
        rows = [(f"{_HOLD}{cid}", repr(self._worst.pop(cid))) for cid in custom_ids if cid in self._worst]
        if rows:
            self._store.db.write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows[0])
            self._store.db.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows[1:])

    def room_again(self) -> bool:
        """After the running batches ended: the first request refused would fit now (their holds became real,
        lower costs), so another pass can send more."""
        return self.next_worst is not None and self.committed() + self.next_worst <= self.cap

    def describe(self) -> str:
        """The job's spend against its cap, for messages (final figures: read from the store now)."""
        recorded, lost = self._store.spent()
        held = self.held()
        text = f"${recorded:.4f} spent by this job's answers"
        if lost:
            text += f" plus up to ${lost:.4f} for requests in flight when an earlier run was killed"
        if held:
            text += f" plus ${held:.4f} held for batches still running"
        return f"{text}, of the ${self.cap:.4f} cap"

    def not_sent(self) -> str:
        """Why requests were not sent, for the final message; "" when every request went."""
        parts = []
        if self.refused:
            parts.append(
                f"{self.refused} request(s) not sent: the next one's worst cost at the batch price "
                f"(${self.next_worst or 0:.4f}) would pass the cap"
            )
        if self.unpriced:
            models = ", ".join(repr(m) for m in sorted(self.unpriced))
            parts.append(
                f"{sum(self.unpriced.values())} request(s) not sent: no price for {models} to hold against "
                "--max-cost (give a price file with --prices)"
            )
        return "; ".join(parts)
