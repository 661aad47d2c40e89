"""Submitting a batch job's items: split into batches within the API's limits and groups, each create call behind
a committed intent (see `batch_intents.py`), and the one-request priming batches of shared prompt prefixes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._models import ErrorInfo, RequestItem, Result
from ..tokens import heuristic_tokens
from .batch_api import BatchRejectedError
from .batch_cap import BatchCap
from .batch_config import BatchJobConfig
from .batch_ledger import BatchLedger
from .batch_service import BatchService
from .deadline import DeadlinePolicy
from .durable import DurableJob
from .store import AdmitState
from .warmup import SharedPrefixes

__all__ = ["PRIMER_REUSE", "BatchSubmitter"]

# A priming batch's cache entry (1 h TTL, counted from the start of the request that wrote it, which is after the
# submit) is reused by a later run within this long: 15 minutes of margin for the rest's batches to start reading
# it (each read refreshes it for another hour).
PRIMER_REUSE = 45 * 60.0


class BatchSubmitter:
    """Sends a batch job's items out in batches; what it submitted is in the ledger before the next call."""

    def __init__(
        self,
        config: BatchJobConfig,
        durable: DurableJob,
        service: BatchService,
        items: Callable[[], AsyncIterator[tuple[RequestItem, AdmitState]]],
        say: Callable[[str], None],
        *,
        cap: BatchCap | None,
        deadline: DeadlinePolicy | None,
    ) -> None:
        self.config = config
        self.durable = durable
        self.service = service
        self.ledger = BatchLedger.of(durable.store)
        self._items = items
        self.say = say
        self.cap = cap
        self.deadline = deadline  # told the size of every item, to plan the online rest
        self.max_requests = min(config.max_requests or service.max_requests, service.max_requests)
        self.max_bytes = min(config.max_bytes or service.max_bytes, service.max_bytes)
        self.prefixes: SharedPrefixes | None = None
        self.submitted = 0
        self.primers = 0

    async def submit_all(self) -> None:
        """Read the input; record bad lines; submit every item that is in no batch yet, in batches within limits
        (and within its group: requests the API will not take in one batch, like two models for OpenAI)."""
        service = self.service
        open_chunks: dict[str, _Chunk] = {}
        if self.cap is not None:
            self.cap.new_pass()
        async for parsed, state in self._items():
            if self.deadline is not None:
                self.deadline.submitted(heuristic_tokens(parsed.params), _expected_output(parsed.params))
            if state == "pending" and self.ledger.in_batch(parsed.custom_id):
                continue
            if self.cap is not None and not self.cap.admit(parsed.custom_id, parsed.params):
                continue  # left pending, and named in the final message
            params = parsed.params if self.prefixes is None else self.prefixes.prepare(parsed.params, "1h")[0]
            encoded = service.encode(parsed.custom_id, params)
            group = service.group(parsed.params)
            chunk = open_chunks.setdefault(group, _Chunk(size=service.envelope))
            if chunk.lines and (
                len(chunk.lines) >= self.max_requests or chunk.size + len(encoded) + 1 > self.max_bytes
            ):
                await self._submit(chunk.lines, chunk.members)
                chunk = open_chunks[group] = _Chunk(size=service.envelope)
            chunk.lines.append(encoded)
            chunk.members.append((parsed.index, parsed.custom_id))
            chunk.size += len(encoded) + 1
        for chunk in open_chunks.values():
            if chunk.lines:
                await self._submit(chunk.lines, chunk.members)
        self.durable.save(now=True)

    async def prime(self) -> int:
        """Submit the first request of each shared prefix alone; return how many prefixes' batches to wait for
        before the rest goes out (their cache writes are readable only once they end). Groups whose first pending
        request is already in a batch (an earlier run) count too; a group an earlier run primed less than
        PRIMER_REUSE ago is not primed again (its entry is still cached)."""
        if self.prefixes is None:
            return 0
        primed: set[str] = set()
        reused = 0
        if self.cap is not None:
            self.cap.new_pass()
        async for parsed, state in self._items():
            params, group = self.prefixes.prepare(parsed.params, "1h")
            if group is None or group in primed:
                continue
            primed.add(group)
            if state == "pending" and self.ledger.in_batch(parsed.custom_id):
                continue
            earlier = self.ledger.primed_at(group)
            now = self.config.clock()
            if earlier is not None and now - earlier < PRIMER_REUSE:
                reused += 1
                continue
            if self.cap is not None and not self.cap.admit(parsed.custom_id, parsed.params):
                continue
            await self._submit([self.service.encode(parsed.custom_id, params)], [(parsed.index, parsed.custom_id)])
            if self.ledger.in_batch(parsed.custom_id):
                self.ledger.record_primer(group, now)
                self.primers += 1
        if reused:
            self.say(f"prompt cache: {reused} shared prefix(es) primed by an earlier run less than 45 min ago, reused")
        return len(primed) - reused

    async def _submit(self, chunk: list[bytes], members: list[tuple[int, str]]) -> None:
        ids = [custom_id for _, custom_id in members]
        # Committed before the call: if the run dies before the answer is recorded, the next run looks for the
        # batch on the server (batch_intents.py) instead of paying for it twice. The cost cap's holds share its commit.
        if self.cap is not None:
            self.cap.hold(ids)
        intent = self.ledger.record_intent(ids, self.config.clock())
        try:
            batch = await self.service.submit(chunk, intent)
        except BatchRejectedError as exc:
            # A final refusal of the whole batch (e.g. a 400 naming one bad request): its items fail with the
            # reason, so the job still ends with every id once; --retry-failed sends them again.
            for index, custom_id in members:
                error = ErrorInfo(
                    kind="invalid_request", message=str(exc), status=exc.status, error_type=exc.error_type
                )
                self.durable.record(Result(index=index, custom_id=custom_id, error=error))
            self.durable.save(now=True)
            self.ledger.drop_intent(intent)
            self.say(f"a batch of {len(members)} request(s) was refused: {exc}")
            return
        # Recorded, and the intent dropped, in one commit before anything else can happen: from here a re-run
        # polls this batch. A crash before this commit leaves the intent, which the re-run resolves.
        self.ledger.record_batch(batch.id, ids, intent=intent)
        self.durable.save(now=True)
        self.submitted += 1
        self.say(f"submitted batch {batch.id} ({len(members)} request(s))")


def _expected_output(params: Mapping[str, Any]) -> int:
    """Output tokens to plan for: half of max_tokens (answers rarely use all of it; the deadline errs early)."""
    found = params.get("max_tokens") or params.get("max_completion_tokens") or 1024
    return int(found) // 2 if isinstance(found, int) else 512


@dataclass
class _Chunk:
    """A batch being filled: its encoded requests, their (index, custom_id), its size in bytes."""

    size: int
    lines: list[bytes] = field(default_factory=list)
    members: list[tuple[int, str]] = field(default_factory=list)
