"""A durable job over a batch API (Anthropic Message Batches, OpenAI Batch): split, submit, poll, store results.

The provider's side is a `BatchService` (`batch_service.py`, `openai_batch.py`); everything here is shared. The
same job store and output writer as `sluicegate run`, so the promises are the same: every input id is in the
output exactly once, and a result is committed before its line is written. The store also records each submitted
batch and which items it holds, committed right after the create call returns; a re-run re-attaches to those
batches (polls them, fetches their results) and submits only the items that are in no batch yet.

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

import contextlib
import dataclasses
import hashlib
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx2

from .._exceptions import BudgetExceededError, ConfigError
from .._models import ErrorInfo, RequestItem, Result
from ..limits.limiter import Limits
from ..pricing import PriceTable, load_prices
from ..retry import RetryPolicy
from ..tokens import heuristic_tokens
from ._messages import with_max_cost
from ._sniff import not_jsonl
from ._spend import SpendLedger
from ._view import JobView
from .admission import Admission
from .batch_api import BatchApiError, BatchClient, BatchRejectedError, BatchStatus
from .batch_cap import BatchSpendCap
from .batch_ledger import BatchIntent, BatchLedger
from .batch_service import CLOCK_MARGIN, AnthropicBatches, BatchService, intent_candidates, result_from_batch
from .deadline import DeadlinePolicy, OnlinePace, deadline_instant, deadline_setting, finish_online
from .openai_batch import OpenAIBatchClient, OpenAIBatches
from .reader import Defaults, InputProblem, iter_lines, read_requests
from .runner import (
    ExitCode,
    JobOutcome,
    _count_lines,
    _unfinished,
    file_settings,
    finished_outcome,
    open_store,
    store_path_for,
)
from .store import AdmitState, JobStore
from .table_output import TableWriter, is_table_output
from .tables import TableSpec, count_rows, table_requests
from .warmup import SharedPrefixes
from .writer import OutputWriter

__all__ = ["CLOCK_MARGIN", "BatchJobConfig", "intent_candidates", "result_from_batch", "run_batch_job"]

_COUNTS = ("processing", "succeeded", "errored", "expired", "canceled")
# A priming batch's cache entry (1 h TTL, counted from the start of the request that wrote it, which is after the
# submit) is reused by a later run within this long: 15 minutes of margin for the rest's batches to start reading
# it (each read refreshes it for another hour).
PRIMER_REUSE = 45 * 60.0


@dataclass(frozen=True, kw_only=True)
class BatchJobConfig:
    input_path: Path
    output_path: Path
    api_key: str = field(repr=False)
    base_url: str
    provider: Literal["anthropic", "openai"] = "anthropic"
    settings_base: str = ""  # what identifies the endpoint in the store (never the key)
    defaults: Defaults = field(default_factory=Defaults)
    prices: PriceTable | None = None  # None: the shipped table
    poll_interval: float = 30.0
    retry_failed: bool = False
    restart: bool = False
    # Anthropic: breakpoints (1 h TTL) on prefixes shared by several requests, and a one-request priming batch per
    # prefix submitted and ended before the rest, since a batch reads no online write (see jobs/warmup.py).
    cache_warmup: bool = True
    # Seconds from the start by which the job must end: batches still running when only the time to send their
    # rest online is left are cancelled, and that rest goes online (see jobs/deadline.py). None: no deadline.
    deadline: float | None = None
    pace: OnlinePace = field(default_factory=OnlinePace)  # the online route's speed, for the deadline
    limits: Limits | None = None  # the online route's limits (None: learnt from headers)
    cancel_allowance: float = 120.0  # seconds a cancel may take to end a batch
    max_requests: int | None = None  # per batch; None: the API's limit (a larger value is cut to it)
    max_bytes: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # The built-in emulator lives as long as one run: batches an earlier run recorded are unknown to the next one,
    # and their items are submitted again. Against a real API an unknown batch stops the job instead (another key
    # or workspace: submitting again could pay twice).
    forget_unknown_batches: bool = False
    transport: httpx2.AsyncBaseTransport | None = field(default=None, repr=False)
    # The wall clock (epoch seconds) that dates create intents; comparable with the server's created_at.
    clock: Callable[[], float] = field(default=time.time, repr=False)
    resume_command: str = ""  # the exact command that resumes this job (the CLI builds it from the flags given)
    table: TableSpec | None = None  # rows of a table (or any JSONL) made into requests by a template
    # USD the whole job may cost: items go into batches only while their worst cost fits (see jobs/batch_cap.py).
    max_cost: float | None = None

    def resume(self) -> str:
        """The command that resumes this job: the one given, else input and output alone."""
        flag = ["--provider", "openai"] if self.provider == "openai" else []
        return self.resume_command or shlex.join(
            ["sluicegate", "batch", str(self.input_path), "-o", str(self.output_path), *flag]
        )


def _settings(config: BatchJobConfig) -> dict[str, str]:
    return {
        "mode": "batch",  # a `run` store is not a batch store: results would be priced and sent differently
        "provider": config.provider,
        "endpoint": config.settings_base,
        **file_settings(config.input_path, config.defaults),
        "order": "completion",
        **(config.table.settings() if config.table is not None else {}),
        **deadline_setting(config.deadline),
    }


class _BatchJob:
    """One run of a batch job: the submit phase, then the poll phase, over one store and writer."""

    def __init__(
        self,
        config: BatchJobConfig,
        store: JobStore,
        writer: OutputWriter | TableWriter,
        service: BatchService,
        say: Any,
    ) -> None:
        self.config = config
        self.store = store
        self.ledger = BatchLedger.of(store)
        self.writer = writer
        self.service = service
        self.max_requests = min(config.max_requests or service.max_requests, service.max_requests)
        self.max_bytes = min(config.max_bytes or service.max_bytes, service.max_bytes)
        self.say = say
        self.prices = load_prices(config.prices)
        self.admission = Admission(store, self._on_problem)
        self.submitted = 0
        self.ended_counts: Counter[str] = Counter()
        self.released = False  # items left a batch (none found, or a foreign one) and wait to be submitted
        self.prefixes: SharedPrefixes | None = None
        self.primers = 0
        self.deadline: DeadlinePolicy | None = None
        self.cancelling = False  # the deadline came near: the batches are cancelled, their rest goes online
        self.online = 0  # items sent online after the cancel
        self.cap: BatchSpendCap | None = None

    def _on_problem(self, bad: InputProblem) -> None:
        if bad.duplicate:  # no output line of its own: told once here, counted in the summary
            self.say(f"line {bad.line}: {bad.message}")
        self.save()

    @property
    def changed(self) -> str | None:
        """Why reading the input stopped early: it no longer matches the stored job."""
        return self.admission.changed

    def save(self, *, now: bool = False) -> None:
        if now:
            self.store.commit()
        elif not self.store.maybe_commit():
            return
        self.writer.write_committed()

    def _items(self) -> AsyncGenerator[tuple[RequestItem, AdmitState]]:
        """The input's items still to be finished: JSONL request lines, or a table's rows through its template."""
        config = self.config
        rows = None
        if config.table is not None:
            rows = table_requests(config.input_path, config.table, config.defaults, config.provider)
        return self.admission.items(config.input_path, config.defaults, config.provider, rows)

    def count_open_batches(self) -> None:
        """Count the batches earlier runs left running against the cost cap (one pass over the input)."""
        open_ids = self.ledger.open_batches()
        if self.cap is None or not open_ids:
            return
        waiting = {custom_id: batch_id for batch_id in open_ids for custom_id in self.ledger.batch_items(batch_id)}
        config, provider = self.config, self.config.provider
        prefixes = self.prefixes
        prepare = None if prefixes is None else (lambda params: prefixes.prepare(params, "1h")[0])
        if config.table is not None:
            parsed = table_requests(config.input_path, config.table, config.defaults, provider)
            self.cap.count_open(waiting, parsed, prepare)
            return
        with config.input_path.open("rb") as f:
            parsed = read_requests(iter_lines(f), defaults=config.defaults, provider=provider)
            self.cap.count_open(waiting, parsed, prepare)

    # -- submit ------------------------------------------------------------------------------------------------

    async def submit_all(self) -> None:
        """Read the input; record bad lines; submit every item that is in no batch yet, in batches within limits
        (and within its group: requests the API will not take in one batch, like two models for OpenAI)."""
        service = self.service
        open_chunks: dict[str, _Chunk] = {}
        async with contextlib.aclosing(self._items()) as items:
            async for parsed, state in items:
                if self.deadline is not None:
                    self.deadline.submitted(heuristic_tokens(parsed.params), _expected_output(parsed.params))
                if state == "pending" and self.ledger.in_batch(parsed.custom_id):
                    continue
                params = parsed.params if self.prefixes is None else self.prefixes.prepare(parsed.params, "1h")[0]
                worst = 0.0
                if self.cap is not None:
                    worst = self.cap.worst(params)
                    if not self.cap.take(worst):
                        break  # the rest stays pending: a higher cap submits it on resume
                encoded = service.encode(parsed.custom_id, params)
                group = service.group(parsed.params)
                chunk = open_chunks.setdefault(group, _Chunk(size=service.envelope))
                if chunk.lines and (
                    len(chunk.lines) >= self.max_requests or chunk.size + len(encoded) + 1 > self.max_bytes
                ):
                    await self._submit(chunk.lines, chunk.members, chunk.worst)
                    chunk = open_chunks[group] = _Chunk(size=service.envelope)
                chunk.lines.append(encoded)
                chunk.members.append((parsed.index, parsed.custom_id))
                chunk.size += len(encoded) + 1
                chunk.worst += worst
        for chunk in open_chunks.values():
            if chunk.lines:
                await self._submit(chunk.lines, chunk.members, chunk.worst)
        self.save(now=True)

    async def prime(self) -> None:
        """Submit the first request of each shared prefix alone, then wait until those batches end: their cache
        writes are then readable by the batches of the rest. Groups whose first pending request is already in a
        batch (an earlier run) are waited for the same way; a group an earlier run primed less than PRIMER_REUSE
        ago is not primed again (its entry is still cached)."""
        if self.prefixes is None:
            return
        primed: set[str] = set()
        reused = 0
        async with contextlib.aclosing(self._items()) as items:
            async for parsed, state in items:
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
                worst = 0.0
                if self.cap is not None:
                    worst = self.cap.worst(params)
                    if not self.cap.take(worst):
                        primed.discard(group)
                        break
                member = [(parsed.index, parsed.custom_id)]
                await self._submit([self.service.encode(parsed.custom_id, params)], member, worst)
                if self.ledger.in_batch(parsed.custom_id):
                    self.ledger.record_primer(group, now)
                    self.primers += 1
        if reused:
            self.say(f"prompt cache: {reused} shared prefix(es) primed by an earlier run less than 45 min ago, reused")
        if self.changed is None and len(primed) > reused:
            self.say(
                f"priming the prompt cache: {len(primed) - reused} shared prefix(es), waiting for their batches to end"
            )
            await self.poll_all()

    async def _submit(self, chunk: list[bytes], members: list[tuple[int, str]], worst: float = 0.0) -> None:
        ids = [custom_id for _, custom_id in members]
        # Committed before the call: if the run dies before the answer is recorded, the next run looks for the
        # batch on the server (resolve_intents) instead of paying for it twice.
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
                self.store.record_result(Result(index=index, custom_id=custom_id, error=error))
            self.save(now=True)
            self.ledger.drop_intent(intent)
            if self.cap is not None:
                self.cap.dropped(worst)
            self.say(f"a batch of {len(members)} request(s) was refused: {exc}")
            return
        # Recorded, and the intent dropped, in one commit before anything else can happen: from here a re-run
        # polls this batch. A crash before this commit leaves the intent, which the re-run resolves.
        self.ledger.record_batch(batch.id, ids, intent=intent)
        if self.cap is not None:
            self.cap.submitted(batch.id, worst)
        self.writer.write_committed()
        self.submitted += 1
        self.say(f"submitted batch {batch.id} ({len(members)} request(s))")

    # -- poll --------------------------------------------------------------------------------------------------

    async def resolve_intents(self) -> None:
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

    async def reattach(self) -> None:
        """Resolve interrupted submits, then check the batches recorded by earlier runs before submitting, so a
        lost one's items can go out again; collect those that ended meanwhile."""
        await self.resolve_intents()
        for batch_id in self.ledger.open_batches():
            batch = await self._retrieve(batch_id)
            if batch is not None and batch.ended:
                self.ended_counts.update(batch.request_counts)
                await self._collect(batch)

    async def _retrieve(self, batch_id: str) -> BatchStatus | None:
        """The batch's status; None for a batch the server does not know that was forgotten (see the config)."""
        try:
            return await self.service.retrieve(batch_id)
        except BatchRejectedError as exc:
            intent = self.ledger.provisional(batch_id) if exc.status == 404 else None
            if intent is not None:  # a listed batch gone since: it cannot be confirmed, so it is not taken
                await self._reject(batch_id, intent, "is gone from the server")
                return None
            if exc.status != 404 or not self.config.forget_unknown_batches:
                raise BatchApiError(
                    f"batch {batch_id}, recorded in the job store, cannot be read ({exc}); was it created with "
                    "another key, workspace or endpoint? Use those again, or --restart to start over"
                ) from exc
            released = self.ledger.forget_batch(batch_id)
            if self.cap is not None:
                self.cap.ended(batch_id)
            self.say(f"batch {batch_id} is unknown to this server: its {released} request(s) will be submitted again")
            return None

    async def poll_all(self) -> None:
        """Poll every recorded batch that has not ended; store the results of each one that has."""
        while (open_ids := self.ledger.open_batches()) and not self.released:
            processing: Counter[str] = Counter()
            for batch_id in open_ids:
                batch = await self._retrieve(batch_id)
                if batch is None:
                    continue
                if batch.ended:
                    self.ended_counts.update(batch.request_counts)
                    await self._collect(batch)
                else:
                    processing.update(batch.request_counts)
            recorded, ended = self.ledger.batch_counts()
            counts = self.ended_counts + processing
            self.say(
                f"batches: {recorded} submitted, {ended} ended; requests: "
                + ", ".join(f"{counts[name]} {name}" for name in _COUNTS)
            )
            if ended < recorded and not self.released:
                await self._cancel_if_late()
                await anyio.sleep(self._next_poll())

    async def _cancel_if_late(self) -> None:
        """Cancel every open batch once waiting longer would leave too little time to send their rest online."""
        if self.deadline is None or self.cancelling:
            return
        unfinished = self.store.counts().pending
        if not self.deadline.should_cancel(self.config.clock(), unfinished):
            return
        self.cancelling = True
        self.say(
            f"deadline: cancelling the batches to send their {unfinished} unfinished request(s) online in time; "
            "what they finished is kept"
        )
        for batch_id in self.ledger.open_batches():
            await self.service.cancel(batch_id)

    def _next_poll(self) -> float:
        """The poll interval, shortened so the cancel moment is not overslept."""
        if self.deadline is None:
            return self.config.poll_interval
        if self.cancelling:  # a cancel ends within its allowance: look more often meanwhile
            return min(self.config.poll_interval, max(1.0, self.deadline.cancel_allowance / 10))
        return self.deadline.next_poll(self.config.clock(), self.store.counts().pending, self.config.poll_interval)

    async def send_rest_online(self) -> None:
        """After a deadline cancel: every item without a result and in no batch goes online (online price)."""
        config = self.config

        async def rest() -> AsyncIterator[RequestItem]:
            async for parsed, _ in self._items():
                if not self.ledger.in_batch(parsed.custom_id):
                    yield parsed

        def record(result: Result) -> None:
            if self.store.record_result(result):
                self.online += 1
            self.save()

        holds = SpendLedger(self.store, self.prices, self.service.provider) if self.cap is not None else None
        if self.cap is not None:
            self.cap.refresh()
            if self.cap.left <= 0:
                self.cap.reached = True
                return

        async def tracked() -> AsyncIterator[RequestItem]:
            async for item in rest():
                yield item if holds is None else holds.track(item)

        try:
            await finish_online(
                tracked(),
                record,
                provider=self.service.provider,
                api_key=config.api_key,
                base_url=config.base_url,
                limits=config.limits,
                prices=self.prices,
                minute=config.pace.minute,
                transport=config.transport,
                max_cost=None if self.cap is None else self.cap.left,
                sinks=[] if holds is None else [holds],
            )
        except* BudgetExceededError:  # raised through the engine's task group, maybe grouped
            assert self.cap is not None
            self.cap.reached = True
        self.save(now=True)

    async def _collect(self, batch: BatchStatus) -> None:
        intent = self.ledger.provisional(batch.id)
        if intent is not None:
            if not await self._is_ours(batch, intent):
                await self._reject(batch.id, intent, "is not this job's (its results name other requests)")
                return
            self.ledger.confirm_batch(intent.seq)
            self.say(f"batch {batch.id} is confirmed as this job's")
        waiting = self.ledger.batch_items(batch.id)
        if not waiting:  # all stored by an earlier run that stopped before marking the batch ended
            self.ledger.end_batch(batch.id)
            return
        missing = f"batch {batch.id} ended without a result for this request"
        try:
            async for line in self.service.results(batch):
                custom_id = str(line.get("custom_id"))
                index = waiting.pop(custom_id, None)
                result = line.get("result")
                if index is None or not isinstance(result, Mapping):
                    continue  # a line seen before (a re-read stream, an earlier run) or not one of ours
                if self.cancelling and result.get("type") == "canceled":
                    continue  # never processed, so never billed: it stays pending and goes online
                found = result_from_batch(index, custom_id, result, batch.id, self.prices, self.service.usage)
                self.store.record_result(found)
                self.save()
        except BatchRejectedError as exc:  # e.g. 404: results are kept for 29 days after creation
            missing = f"the results of batch {batch.id} cannot be read: {exc}"
        for custom_id, index in waiting.items():
            error = ErrorInfo(kind="server", message=missing)
            self.store.record_result(Result(index=index, custom_id=custom_id, error=error))
        self.save(now=True)
        self.ledger.end_batch(batch.id)
        if self.cap is not None:
            self.cap.ended(batch.id)
        if self.cancelling:
            self.ledger.release_ended_batches()  # its canceled items leave it, to go online

    async def _reject(self, batch_id: str, intent: BatchIntent, why: str) -> None:
        """Drop a provisional adoption (nothing of the batch was stored) and look for the intent's batch again."""
        self.ledger.reject_batch(intent.seq, batch_id)
        if self.cap is not None:
            self.cap.ended(batch_id)
        self.say(f"batch {batch_id} {why}: nothing of it is kept")
        await self.resolve_intents()

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


async def run_batch_job(config: BatchJobConfig, *, view: JobView | None = None) -> JobOutcome:
    """Run (or resume) the batch job described by `config`; never raises for per-item problems.

    It prints nothing: each note (batches submitted and ended, the final tally) goes to `view.say`.
    """
    say = (view or JobView()).say
    wrong_format = not_jsonl(config.input_path) if config.table is None else None
    if wrong_format is not None:
        return JobOutcome(ExitCode.USAGE, wrong_format)
    if (config.max_requests or 1) < 1 or (config.max_bytes or 1024) < 1024 or config.poll_interval < 0:
        return JobOutcome(ExitCode.USAGE, "max requests and bytes per batch must be positive, the poll interval >= 0")
    store = open_store(config.output_path, _settings(config), config.restart, config.resume())
    if isinstance(store, JobOutcome):
        return store

    try:
        if config.retry_failed:
            reset = store.reset_failed()
            BatchLedger.of(store).release_ended_batches()
            say(f"retrying {reset} failed item(s)")
        writer: OutputWriter | TableWriter = (
            TableWriter(config.input_path, config.output_path, store.output)
            if config.table is not None and is_table_output(config.output_path)
            else OutputWriter.open(config.output_path, store.output, "completion")
        )
        started = time.monotonic()
        stop_reason: str | None = None
        interrupted = False
        client, service = _service(config)
        async with client, anyio.create_task_group() as tg:
            job = _BatchJob(config, store, writer, service, say)
            if config.deadline is not None:
                job.deadline = DeadlinePolicy(
                    deadline_at=deadline_instant(store, config.clock() + config.deadline),
                    pace=config.pace,
                    cancel_allowance=config.cancel_allowance,
                )

            async def watch_signals(scope: anyio.CancelScope) -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        scope.cancel()

            with anyio.CancelScope() as work:
                if sys.platform != "win32":
                    tg.start_soon(watch_signals, work)
                try:
                    if config.max_cost is not None:
                        job.cap = BatchSpendCap(config.max_cost, store, job.prices, service.provider)
                    await job.reattach()
                    if config.cache_warmup and service.provider == "anthropic":
                        job.prefixes = SharedPrefixes.scan(
                            config.input_path, config.defaults, service.provider, config.table
                        )
                    job.count_open_batches()
                    await job.prime()
                    while True:  # again when a rejected adoption put items back to be submitted
                        job.released = False
                        await job.submit_all()
                        if job.changed is not None:
                            break
                        await job.poll_all()
                        if job.cancelling and not job.released:
                            await job.send_rest_online()
                        if not job.released:
                            break
                except BatchApiError as exc:
                    stop_reason = str(exc)
            # Plain synchronous calls: no cancellation can interrupt the final commit and write.
            store.commit()
            writer.write_committed()
            if config.retry_failed:
                writer.rewrite()  # the retried items' old error lines are replaced: one line per id
            writer.close()
            tg.cancel_scope.cancel()
        return _outcome(config, store, job, time.monotonic() - started, stop_reason, interrupted, say)
    except ConfigError as exc:
        return JobOutcome(ExitCode.USAGE, str(exc))
    finally:
        store.close()


def _expected_output(params: Mapping[str, Any]) -> int:
    """Output tokens to plan for: half of max_tokens (answers rarely use all of it; the deadline errs early)."""
    found = params.get("max_tokens") or params.get("max_completion_tokens") or 1024
    return int(found) // 2 if isinstance(found, int) else 512


def _service(config: BatchJobConfig) -> tuple[BatchClient, BatchService]:
    """The HTTP client and the batch API of the job's provider."""
    options: dict[str, Any] = {
        "api_key": config.api_key,
        "base_url": config.base_url,
        "retry": config.retry,
        "transport": config.transport,
    }
    if config.provider == "openai":
        openai = OpenAIBatchClient(**options)
        # Names this job in each batch's metadata: a re-run recognises its own interrupted submits by it.
        token = hashlib.sha256(str(store_path_for(config.output_path).resolve()).encode()).hexdigest()[:16]
        return openai, OpenAIBatches(openai, token)
    client = BatchClient(**options)
    return client, AnthropicBatches(client)


@dataclass
class _Chunk:
    """A batch being filled: its encoded requests, their (index, custom_id), its size in bytes."""

    size: int
    lines: list[bytes] = field(default_factory=list)
    members: list[tuple[int, str]] = field(default_factory=list)
    worst: float = 0.0  # the members' worst cost, for the cost cap


def _outcome(
    config: BatchJobConfig,
    store: JobStore,
    job: _BatchJob,
    wall: float,
    stop_reason: str | None,
    interrupted: bool,
    say: Callable[[str], None],
) -> JobOutcome:
    counts = store.counts()
    _, cost, unpriced = store.totals()
    recorded, ended = job.ledger.batch_counts()
    summary = dataclasses.asdict(counts) | {"batches": recorded}
    say(
        f"{counts.total} item(s): {counts.done} succeeded, {counts.failed} failed, {counts.invalid} invalid, "
        f"{counts.duplicate} duplicate, "
        f"{counts.pending} pending; {recorded} batch(es), {ended} ended; "
        f"cost ${cost:.4f} at the batch price"
        + (f" ({job.online} sent online after the deadline cancel at the online price)" if job.online else "")
        + f"; wall time {wall:.1f} s"
    )
    if job.changed is not None:
        return JobOutcome(ExitCode.USAGE, job.changed, summary)
    note = (
        f". Cost unknown for {unpriced} answer(s) with no price (give a price file with --prices)" if unpriced else ""
    )
    resume = config.resume()
    running = recorded - ended
    if interrupted:
        return JobOutcome(
            ExitCode.INTERRUPTED,
            f"interrupted: {running} batch(es) keep running on the server and {counts.pending} item(s) are not "
            f"finished. Resume with: {resume}",
            summary,
        )
    if job.cap is not None and job.cap.reached:
        # Lines after the one that did not fit were never read: they are unfinished too.
        lines = count_rows(config.input_path) if config.table is not None else _count_lines(config.input_path)
        return JobOutcome(
            ExitCode.BUDGET,
            f"stopped at the cost cap: {job.cap.describe()}; the next request would not fit. "
            f"{_unfinished(counts, lines)} item(s) not finished; to go on, raise the cap: {with_max_cost(resume)}"
            + note,
            summary,
        )
    if stop_reason is not None:
        return JobOutcome(
            ExitCode.ABORTED,
            f"stopped: {stop_reason}. {counts.pending} item(s) pending ({running} batch(es) still running on the "
            f"server); fix the cause and resume with: {resume}",
            summary,
        )
    return finished_outcome(counts, config.output_path, note, summary)
