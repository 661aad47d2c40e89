"""A durable job over a batch API (Anthropic Message Batches, OpenAI Batch): split, submit, poll, store results.

The provider's side is a `BatchService` (`batch_service.py`, `openai_batch.py`); everything here is shared. The
same job store and output writer as `sluicegate run`, so the promises are the same: every input id is in the
output exactly once, and a result is committed before its line is written. The store also records each submitted
batch and which items it holds, committed right after the create call returns; a re-run re-attaches to those
batches (polls them, fetches their results) and submits only the items that are in no batch yet.

An interrupted create call is resolved before anything is submitted (see `batch_intents.py`): the API has no
idempotency key, so a batch created just before a crash is looked for instead of paid for twice.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping

from .._clock import Clock, SystemClock
from .._exceptions import BudgetExceededError, ConfigError
from .._models import ErrorInfo, RequestItem, Result
from ..pricing import load_prices
from ._disk import no_space_in
from ._messages import with_max_cost
from ._sniff import not_jsonl
from ._spend import SpendLedger
from ._view import JobView
from .admission import Admission
from .batch_api import BatchApiError, BatchRejectedError, BatchStatus
from .batch_cap import BatchCap
from .batch_config import BatchJobConfig, batch_service_for, batch_settings
from .batch_intents import IntentRecovery
from .batch_ledger import BatchLedger
from .batch_service import BatchService, result_from_batch
from .batch_submit import BatchSubmitter
from .deadline import DeadlinePolicy, deadline_instant, finish_online
from .durable import DurableJob, open_store
from .outcome import ExitCode, JobOutcome, finished_outcome, no_space_outcome
from .reader import InputProblem
from .store import AdmitState
from .table_output import TableWriter, is_table_output
from .tables import table_requests
from .warmup import SharedPrefixes
from .writer import OutputWriter

__all__ = ["BatchJobConfig", "run_batch_job"]

_COUNTS = ("processing", "succeeded", "errored", "expired", "canceled")


class _BatchJob:
    """One run of a batch job: the submit phase, then the poll phase, over one store and writer."""

    def __init__(
        self,
        config: BatchJobConfig,
        durable: DurableJob,
        service: BatchService,
        say: Callable[[str], None],
        deadline: DeadlinePolicy | None,
    ) -> None:
        self.config = config
        self.durable = durable
        self.store = store = durable.store
        self.ledger = BatchLedger.of(store)
        self.service = service
        self.say = say
        self.prices = load_prices(config.prices)
        self.admission = Admission(store, self._on_problem)
        self.ended_counts: Counter[str] = Counter()
        self.intents = IntentRecovery(self.ledger, service, say)
        self.deadline = deadline
        self.cancelling = False  # the deadline came near: the batches are cancelled, their rest goes online
        self.online = 0  # items sent online after the cancel
        self.online_capped = False  # --max-cost stopped what the deadline cancel sent online
        self.cap = None if config.max_cost is None else BatchCap(store, config.max_cost, self.prices, service.provider)
        self.submitter = BatchSubmitter(config, durable, service, self._items, say, cap=self.cap, deadline=deadline)

    def _on_problem(self, bad: InputProblem) -> None:
        if bad.duplicate:  # no output line of its own: told once here, counted in the summary
            self.say(f"line {bad.line}: {bad.message}")
        self.durable.save()

    @property
    def changed(self) -> str | None:
        """Why reading the input stopped early: it no longer matches the stored job."""
        return self.admission.changed

    async def run(self) -> None:
        """Re-attach to what earlier runs submitted, prime the cache, submit the rest, poll until every batch ended."""
        config, service = self.config, self.service
        await self.reattach()
        if config.cache_warmup and service.provider == "anthropic":
            self.submitter.prefixes = SharedPrefixes.scan(
                config.input_path, config.defaults, service.provider, config.table
            )
            await self.prime()
        while True:  # again when a rejected adoption put items back to be submitted
            self.intents.released = False
            await self.submit_all()
            if self.changed is not None:
                break
            await self.poll_all()
            if self.cancelling and not self.intents.released:
                await self.send_rest_online()
            # Again too when the ended batches' real costs left room under the cap for what it held back.
            if not self.intents.released and not (self.cap is not None and self.cap.room_again()):
                break
        own = self.admission.kept_own_note()
        if own is not None:
            self.say(own)

    def _items(self) -> AsyncIterator[tuple[RequestItem, AdmitState]]:
        """The input's items still to be finished: JSONL request lines, or a table's rows through its template."""
        config = self.config
        rows = None
        if config.table is not None:
            rows = table_requests(config.input_path, config.table, config.defaults, config.provider)
        return self.admission.items(config.input_path, config.defaults, config.provider, rows)

    # -- submit ------------------------------------------------------------------------------------------------

    async def submit_all(self) -> None:
        """Submit every item that is in no batch yet; bad lines are recorded on the way."""
        self.admission.kept_own.clear()  # counted again by each full pass over the input
        await self.submitter.submit_all()

    async def prime(self) -> None:
        """Prime the prompt cache: each shared prefix's first request alone, then wait until those batches end, so
        the batches of the rest read what they wrote."""
        waiting = await self.submitter.prime()
        if self.changed is None and waiting:
            self.say(f"priming the prompt cache: {waiting} shared prefix(es), waiting for their batches to end")
            await self.poll_all()

    async def reattach(self) -> None:
        """Resolve interrupted submits, then check the batches recorded by earlier runs before submitting, so a
        lost one's items can go out again; collect those that ended meanwhile."""
        await self.intents.resolve()
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
            if exc.status == 404 and await self.intents.gone(batch_id):
                return None
            if exc.status != 404 or not self.config.forget_unknown_batches:
                raise BatchApiError(
                    f"batch {batch_id}, recorded in the job store, cannot be read ({exc}); was it created with "
                    "another key, workspace or endpoint? Use those again, or --restart to start over"
                ) from exc
            released = self.ledger.forget_batch(batch_id)
            self.say(f"batch {batch_id} is unknown to this server: its {released} request(s) will be submitted again")
            return None

    async def poll_all(self) -> None:
        """Poll every recorded batch that has not ended; store the results of each one that has."""
        while (open_ids := self.ledger.open_batches()) and not self.intents.released:
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
            if ended < recorded and not self.intents.released:
                await self._cancel_if_late()
                await self.durable.clock.sleep(self._next_poll())

    async def _cancel_if_late(self) -> None:
        """Cancel every open batch once waiting longer would leave too little time to send their rest online."""
        if self.deadline is None or self.cancelling:
            return
        unfinished = self.store.counts().pending
        if not self.deadline.should_cancel(self.durable.clock.now(), unfinished):
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
        now = self.durable.clock.now()
        return self.deadline.next_poll(now, self.store.counts().pending, self.config.poll_interval)

    async def send_rest_online(self) -> None:
        """After a deadline cancel: every item without a result and in no batch goes online (online price). With
        --max-cost the online engine gets what the cap leaves once the batches ended (their real costs replaced
        their holds), and holds each request's worst cost in the store as `run` does, so the cap covers the job."""
        config = self.config
        holds = None if self.cap is None else SpendLedger(self.store, self.prices, self.service.provider)
        left = None if self.cap is None else self.cap.cap - self.cap.committed()
        if left is not None and left <= 0:
            self.online_capped = True
            return

        async def rest() -> AsyncIterator[RequestItem]:
            async for parsed, _ in self._items():
                if not self.ledger.in_batch(parsed.custom_id):
                    yield parsed if holds is None else holds.track(parsed)

        def record(result: Result) -> None:
            if self.durable.record(result):
                self.online += 1

        try:
            await finish_online(
                rest(),
                record,
                provider=self.service.provider,
                api_key=config.api_key,
                base_url=config.base_url,
                limits=config.limits,
                prices=self.prices,
                minute=config.pace.minute,
                transport=config.transport,
                max_cost=left,
                sinks=[] if holds is None else [holds],
            )
        except* BudgetExceededError:  # raised through the engine's task group, maybe grouped
            self.online_capped = True
        self.durable.save(now=True)

    async def _collect(self, batch: BatchStatus) -> None:
        if not await self.intents.settle(batch):
            return
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
                self.durable.record(found)
        except BatchRejectedError as exc:  # e.g. 404: results are kept for 29 days after creation
            missing = f"the results of batch {batch.id} cannot be read: {exc}"
        for custom_id, index in waiting.items():
            error = ErrorInfo(kind="server", message=missing)
            self.durable.record(Result(index=index, custom_id=custom_id, error=error))
        self.durable.save(now=True)
        self.ledger.end_batch(batch.id)
        if self.cancelling:
            self.ledger.release_ended_batches()  # its canceled items leave it, to go online


async def run_batch_job(
    config: BatchJobConfig, *, view: JobView | None = None, clock: Clock | None = None
) -> JobOutcome:
    """Run (or resume) the batch job described by `config`; never raises for per-item problems.

    It prints nothing: each note (batches submitted and ended, the final tally) goes to `view.say`. `clock` times
    the run, its deadline, its waits between polls and its retries (the system clock by default); the wall clock
    that dates create intents is `config.clock`.
    """
    say = (view or JobView()).say
    clock = clock or SystemClock()
    wrong_format = not_jsonl(config.input_path) if config.table is None else None
    if wrong_format is not None:
        return JobOutcome(ExitCode.USAGE, wrong_format)
    if (config.max_requests or 1) < 1 or (config.max_bytes or 1024) < 1024 or config.poll_interval < 0:
        return JobOutcome(ExitCode.USAGE, "max requests and bytes per batch must be positive, the poll interval >= 0")
    if config.max_cost is not None and config.max_cost <= 0:
        return JobOutcome(ExitCode.USAGE, "--max-cost must be positive")
    store = open_store(config.output_path, batch_settings(config), config.restart, config.resume(), clock=clock.now)
    if isinstance(store, JobOutcome):
        return store
    durable = DurableJob(
        store,
        lambda: (
            TableWriter(config.input_path, config.output_path, store.output)
            if config.table is not None and is_table_output(config.output_path)
            else OutputWriter.open(config.output_path, store.output, "completion", clock=clock.now)
        ),
        clock=clock,
        retry_failed=config.retry_failed,
    )
    try:
        with durable:
            if config.retry_failed:
                BatchLedger.of(store).release_ended_batches()
                say(f"retrying {durable.retried} failed item(s)")
            started = clock.now()
            stop_reason: str | None = None
            client, service = batch_service_for(config, clock)
            async with client:
                deadline = None
                if config.deadline is not None:
                    # The instant stored by the job's first run, on the wall clock: a resume keeps it.
                    wall_now = config.clock()
                    left = deadline_instant(store, wall_now + config.deadline) - wall_now
                    deadline = DeadlinePolicy(
                        deadline_at=clock.now() + left, pace=config.pace, cancel_allowance=config.cancel_allowance
                    )
                job = _BatchJob(config, durable, service, say, deadline)
                try:
                    async with durable.running():
                        await job.run()
                except BatchApiError as exc:
                    stop_reason = str(exc)
            return _outcome(config, job, clock.now() - started, stop_reason, say)
    except ConfigError as exc:
        return JobOutcome(ExitCode.USAGE, str(exc))
    except (OSError, sqlite3.Error, BaseExceptionGroup) as exc:
        # A full disk outside the saves (a batch's record, an intent's commit): every step of a batch's life was
        # committed before the next began, so the next run re-attaches to what was created.
        full = no_space_in(exc, store.path, config.output_path)
        if full is None:
            raise
        return no_space_outcome(full, config.resume(), {})


def _outcome(
    config: BatchJobConfig, job: _BatchJob, wall: float, stop_reason: str | None, say: Callable[[str], None]
) -> JobOutcome:
    store = job.store
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
    not_sent = "" if job.cap is None else job.cap.not_sent()
    if job.online_capped:
        online = (
            "the rest the deadline cancel sends online stopped: the next request's worst cost at the online price "
            "would pass the cap"
        )
        not_sent = f"{not_sent}; {online}" if not_sent else online
    if job.durable.failed is not None:
        return no_space_outcome(job.durable.failed, resume, summary)
    if job.durable.interrupts:
        return JobOutcome(
            ExitCode.INTERRUPTED,
            f"interrupted: {running} batch(es) keep running on the server and {counts.pending} item(s) are not "
            f"finished. Resume with: {resume}",
            summary,
        )
    if stop_reason is not None:
        return JobOutcome(
            ExitCode.ABORTED,
            f"stopped: {stop_reason}. {counts.pending} item(s) pending ({running} batch(es) still running on the "
            f"server); fix the cause and resume with: {resume}",
            summary,
        )
    if not_sent and job.cap is not None:
        return JobOutcome(
            ExitCode.BUDGET,
            f"stopped at the cost cap: {job.cap.describe()}. {not_sent}. {counts.pending} item(s) not finished; "
            f"to go on, raise the cap: {with_max_cost(resume)}{note}",
            summary,
        )
    return finished_outcome(counts, config.output_path, note, summary)
