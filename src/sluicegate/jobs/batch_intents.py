"""Create intents: a batch create call that may have made a batch whose id was never recorded.

The API has no idempotency key for creating a batch, so a crash between the create call returning and the commit
of its id would lose the id and pay for the batch twice. To close that window, an intent (the items, their count
and the local UTC time just before the call) is committed before each create call and replaced by the batch's row
once the answer is recorded. On resume, an intent still there is looked for in the account's list of batches
(newest first, back to its time less a clock margin): a batch of the same number of requests, created since then,
that this job has not recorded. None: the call never made a batch, and the items are submitted as usual. One or
more: the one created nearest the intent's time is adopted provisionally; it is polled like the others, but its
results are stored only if their custom_ids are exactly the intent's items. If they are not (another process's
batch of the same size), nothing of it is stored, it is marked foreign, and the intent is looked for again: the
next candidate is adopted, or, with none left, the items are submitted again. So a wrong guess costs a wait, never
a foreign result in the output, and our own batch, if it exists, is still found. The one case it cannot tell
apart: another job's batch with exactly the same custom_ids, created in the same minutes. Not covered here: a
create attempt that times out after the server made the batch is retried by the retry policy within the same run,
which can make a second batch.
"""

from __future__ import annotations

from collections.abc import Callable

from .batch_api import BatchRejectedError, BatchStatus
from .batch_ledger import BatchIntent, BatchLedger
from .batch_service import CLOCK_MARGIN, BatchService

__all__ = ["IntentRecovery"]


class IntentRecovery:
    """Finds the batches of interrupted create calls, adopts each provisionally, and confirms or rejects it by its
    results before anything of it is stored."""

    def __init__(self, ledger: BatchLedger, service: BatchService, say: Callable[[str], None]) -> None:
        self.ledger = ledger
        self.service = service
        self.say = say
        self.released = False  # items left a batch (none found, or a foreign one) and wait to be submitted

    async def resolve(self) -> None:
        """Look for the batches of create calls whose answer was never recorded (a crash in between) in the
        account's list: adopt the likeliest provisionally, or free the items to be submitted if there is none."""
        pending = [intent for intent in self.ledger.intents() if intent.adopted is None]
        if not pending:
            return
        since = min(intent.planned_at for intent in pending) - CLOCK_MARGIN
        listed = [batch async for batch in self.service.list_since(since)]
        known = self.ledger.known_batch_ids()
        for intent in pending:
            found = self.service.candidates(intent, listed, known)
            if not found:
                self.ledger.drop_intent(intent.seq)
                self.released = True
                self.say(f"an interrupted submit of {intent.requests} request(s) made no batch: submitting them")
                continue
            chosen = found[0]
            self.ledger.adopt_batch(intent.seq, chosen.id, intent.custom_ids)
            known.add(chosen.id)
            others = ", ".join(batch.id for batch in found[1:])
            self.say(
                f"batch {chosen.id} ({intent.requests} request(s)) is taken as the one an interrupted submit "
                "created, until its results confirm it" + (f" (other candidates: {others})" if others else "")
            )

    async def gone(self, batch_id: str) -> bool:
        """A batch the server does not know: if it was a provisional adoption (listed, gone since), it cannot be
        confirmed, so it is not taken and its intent is looked for again. False: it was not one."""
        intent = self.ledger.provisional(batch_id)
        if intent is None:
            return False
        await self._reject(batch_id, intent, "is gone from the server")
        return True

    async def settle(self, batch: BatchStatus) -> bool:
        """Whether an ended batch's results may be stored: a batch this job recorded, or a provisional adoption
        whose results name exactly its intent's items (confirmed now). A foreign one is rejected."""
        intent = self.ledger.provisional(batch.id)
        if intent is None:
            return True
        if not await self._is_ours(batch, intent):
            await self._reject(batch.id, intent, "is not this job's (its results name other requests)")
            return False
        self.ledger.confirm_batch(intent.seq)
        self.say(f"batch {batch.id} is confirmed as this job's")
        return True

    async def _reject(self, batch_id: str, intent: BatchIntent, why: str) -> None:
        """Drop a provisional adoption (nothing of the batch was stored) and look for the intent's batch again."""
        self.ledger.reject_batch(intent.seq, batch_id)
        self.say(f"batch {batch_id} {why}: nothing of it is kept")
        await self.resolve()

    async def _is_ours(self, batch: BatchStatus, intent: BatchIntent) -> bool:
        """A first pass over a provisionally adopted batch's results: their custom_ids are exactly the intent's
        items (nothing is stored in this pass). Unreadable results cannot confirm it."""
        seen: set[str] = set()
        try:
            async for line in self.service.results(batch):
                seen.add(str(line.get("custom_id")))
        except BatchRejectedError:
            return False
        return seen == set(intent.custom_ids)
