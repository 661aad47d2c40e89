"""Message Batches state over emulated time: schedule, processing, cancel, expiry and pagination (pure).

A batch's requests finish one by one at seeded, evenly spread moments over `duration` emulated seconds, in a
shuffled order (real results are not in request order). Time is passed in and the work due by then is done by
`advance`, so a batch progresses exactly as if processed in the background, with no timer task to leak: every
read of a batch advances it first.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batch", "BatchStore", "Processor"]

# Given one request's params, return its `result` object: {"type": "succeeded", "message": ...} or
# {"type": "errored", "error": ...}.
Processor = Callable[[Mapping[str, Any]], dict[str, Any]]

_ALNUM = string.ascii_letters + string.digits


@dataclass(slots=True)
class Batch:
    """One Message Batch; times are emulated seconds."""

    id: str
    seq: int
    created_at: float
    expires_at: float
    requests: list[tuple[str, Mapping[str, Any]]]
    due: list[float]  # due[k] = when the k-th request of `order` finishes
    order: list[int]
    done: int = 0  # requests of `order` processed so far
    results: list[dict[str, Any]] = field(default_factory=list)  # JSONL lines, in completion order
    counts: dict[str, int] = field(default_factory=lambda: {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    cancel_initiated_at: float | None = None
    cancel_done_at: float | None = None
    ended_at: float | None = None
    scope: str = ""  # the creating API key: its requests share that key's prompt cache

    @property
    def status(self) -> str:
        """`in_progress`, `canceling` or `ended`."""
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def request_counts(self) -> dict[str, int]:
        """Counts as the API reports them: everything `processing` until the whole batch has ended."""
        if self.ended_at is None:
            return {"processing": len(self.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        return {"processing": 0, **self.counts}


class BatchStore:
    """All batches of one emulator, newest last; ids are unique and sortable by creation."""

    def __init__(
        self,
        *,
        duration: float = 60.0,
        deadline: float = 86_400.0,
        cancel_delay: float = 1.0,
        max_requests: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.duration = duration
        self.max_requests = max_requests
        self.deadline = deadline
        self.cancel_delay = cancel_delay
        self._rng = random.Random(seed)
        self._batches: dict[str, Batch] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._batches)

    def _new_id(self) -> str:
        return "msgbatch_01" + "".join(self._rng.choice(_ALNUM) for _ in range(22))

    def create(self, requests: list[tuple[str, Mapping[str, Any]]], now: float, *, scope: str = "") -> Batch:
        """Register a batch; its requests finish evenly spread over `duration` in a shuffled order."""
        n = len(requests)
        order = list(range(n))
        self._rng.shuffle(order)
        due = [now + self.duration * (k + 1) / n for k in range(n)]
        self._seq += 1
        batch_id = self._new_id()
        while batch_id in self._batches:
            batch_id = self._new_id()
        batch = Batch(
            id=batch_id,
            seq=self._seq,
            created_at=now,
            expires_at=now + self.deadline,
            requests=list(requests),
            due=due,
            order=order,
            scope=scope,
        )
        self._batches[batch.id] = batch
        return batch

    def get(self, batch_id: str) -> Batch | None:
        """The batch with this id, or None (never created or deleted)."""
        return self._batches.get(batch_id)

    def advance(self, batch: Batch, now: float, process: Processor) -> None:
        """Do the work due by `now`: process requests, then end the batch by completion, cancel or expiry."""
        if batch.ended_at is not None:
            return
        stop = min(now, batch.expires_at)
        if batch.cancel_done_at is not None:
            stop = min(stop, batch.cancel_done_at)
        while batch.done < len(batch.order) and batch.due[batch.done] <= stop:
            custom_id, params = batch.requests[batch.order[batch.done]]
            result = process(params)
            batch.counts[str(result["type"])] += 1
            batch.results.append({"custom_id": custom_id, "result": result})
            batch.done += 1
        if batch.done == len(batch.order):
            batch.ended_at = batch.due[-1] if batch.due else batch.created_at
        elif batch.cancel_done_at is not None and now >= batch.cancel_done_at:
            self._finish_rest(batch, "canceled", batch.cancel_done_at)
        elif now >= batch.expires_at:
            self._finish_rest(batch, "expired", batch.expires_at)

    def _finish_rest(self, batch: Batch, kind: str, at: float) -> None:
        for k in range(batch.done, len(batch.order)):
            custom_id, _ = batch.requests[batch.order[k]]
            batch.results.append({"custom_id": custom_id, "result": {"type": kind}})
            batch.counts[kind] += 1
        batch.done = len(batch.order)
        batch.ended_at = at

    def cancel(self, batch: Batch, now: float) -> None:
        """Start canceling: requests not processed within `cancel_delay` end as `canceled`."""
        if batch.ended_at is None and batch.cancel_initiated_at is None:
            batch.cancel_initiated_at = now
            batch.cancel_done_at = now + self.cancel_delay

    def delete(self, batch_id: str) -> None:
        """Forget a batch (the caller checks that it has ended)."""
        self._batches.pop(batch_id, None)

    def page(self, *, limit: int, before_id: str | None, after_id: str | None) -> tuple[list[Batch], bool]:
        """One page of the newest-first list: after_id pages toward older batches, before_id toward newer."""
        newest_first = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
        if after_id is not None:
            anchor = self._batches.get(after_id)
            items = [b for b in newest_first if anchor is None or b.seq < anchor.seq]
            return items[:limit], len(items) > limit
        if before_id is not None:
            anchor = self._batches.get(before_id)
            items = [b for b in newest_first if anchor is None or b.seq > anchor.seq]
            # The page nearest the anchor: the last `limit` of the newer ones.
            return items[-limit:], len(items) > limit
        return newest_first[:limit], len(newest_first) > limit

    def active(self) -> list[Batch]:
        """Batches that have not ended yet."""
        return [b for b in self._batches.values() if b.ended_at is None]

    def clear(self) -> None:
        """Forget every batch (the emulator's reset)."""
        self._batches.clear()
