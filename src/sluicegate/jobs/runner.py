"""A durable run over a JSONL file: read lazily, skip what is done, send through the engine, commit, then write.

The order of effects is what makes a crash harmless: a result is committed to the store before its line is
written, and the output file is derived from the store (a partial last line is cut on resume). A killed run
re-sends only the items whose results were not committed yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx2

from .._clock import Clock, SystemClock
from .._config import Timeouts
from .._events import RequestCompleted
from .._exceptions import BudgetExceededError, ConfigError, RunAbortedError
from .._models import RequestItem
from .._stats import EngineStatistics
from ..engine import Engine, shared_pool_name
from ..limits.limiter import Limits
from ..pricing import PriceTable, load_prices
from ..retry import RetryPolicy
from ._messages import with_max_cost
from ._sniff import not_jsonl
from ._spend import SpendLedger
from ._view import JobView
from .admission import Admission
from .deadline import deadline_instant, deadline_setting
from .durable import DurableJob, OutputFile, file_settings, open_store, store_path_for
from .flex import flex_options, flex_results, flex_sinks, flex_timeout_for
from .outcome import ExitCode, JobOutcome, finished_outcome, no_space_outcome, unfinished_count
from .reader import Defaults, InputProblem
from .store import JobStore
from .table_output import TableWriter, is_table_output
from .tables import TableSpec, count_rows, table_requests
from .timeline import TimelineRecorder
from .warmup import OnlineWarmup, SharedPrefixes
from .writer import OutputWriter

__all__ = ["ExitCode", "JobConfig", "JobOutcome", "run_job", "store_path_for"]

_COMMIT_INTERVAL = 0.01
# Answers recorded but not yet committed are what a kill would send again: commit as soon as this many wait, even
# inside the commit window (a busy loop can stretch the window; a count cannot stretch).
_UNSAVED_MAX = 2


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    input_path: Path
    output_path: Path
    provider: Literal["anthropic", "openai"] = "anthropic"
    api_key: str = field(repr=False)
    base_url: str | None = None
    settings_base: str = ""  # what identifies the endpoint in the store (never the key)
    defaults: Defaults = field(default_factory=Defaults)
    limits: Limits | None = None
    max_concurrency: int | None = None
    max_cost: float | None = None
    prices: PriceTable | None = None  # None: the shipped table
    ordered: bool = False
    retry_failed: bool = False
    restart: bool = False
    minute: float | None = None  # overrides the windows learnt from the headers
    shared_limits: str | None = None  # redis://... : one limiter for every process on this key
    shared_limits_name: str | None = None
    shared_limits_fallback: bool | int = False  # True or N: 1/N of the limits locally while Redis is lost
    table: TableSpec | None = None  # rows of a table (or any JSONL) made into requests by a template
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain_timeout: float = 30.0
    service_tier: Literal["standard", "flex"] = "standard"  # flex: OpenAI's, at batch prices (see jobs/flex.py)
    flex_timeout: float = 600.0  # a flex answer slower than this is asked again on the standard tier
    # Seconds from the first run's start by which the job should end (kept across resumes): flex answers are given
    # at most half the time left before they go to the standard tier. None: no deadline.
    deadline: float | None = None
    cache_warmup: bool = True  # place breakpoints on shared prefixes and prime each one first (see jobs/warmup.py)
    # The command that resumes this job, exactly (the CLI builds it from the flags given); used in messages.
    resume_command: str = ""
    # An in-process transport instead of the network: for benchmarks and tests of the job machinery itself.
    transport: httpx2.AsyncBaseTransport | None = field(default=None, repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, repr=False)  # dates the deadline's instant

    def resume(self) -> str:
        """The command that resumes this job: the one given, else input and output alone."""
        return self.resume_command or shlex.join(
            ["sluicegate", "run", str(self.input_path), "-o", str(self.output_path)]
        )


def _settings(config: JobConfig) -> dict[str, str]:
    return {
        "provider": config.provider,
        "endpoint": config.settings_base,
        **file_settings(config.input_path, config.defaults),
        "order": "input" if config.ordered else "completion",
        **(config.table.settings() if config.table is not None else {}),
        **deadline_setting(config.deadline),
    }


def _count_lines(path: Path) -> int:
    """Non-blank lines, counted in 1 MiB blocks (about a second for a few GB)."""
    count = 0
    last = b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


async def run_job(config: JobConfig, *, view: JobView | None = None, clock: Clock | None = None) -> JobOutcome:
    """Run (or resume) the job described by `config`; never raises for per-item problems.

    The job shows nothing itself: `view` receives its events and notes (the CLI renders them), and the outcome
    says how it ended (the CLI maps it to an exit code). `clock` is the one time of the whole run: the engine's
    waits, the commit windows and ticks, the drain after Ctrl-C, the timeline (the system clock by default).
    """
    walls: list[float] = []
    outcome = await _run_job(config, view or JobView(), clock or SystemClock(), walls)
    outcome.wall = walls[0] if walls else None
    return outcome


async def _run_job(config: JobConfig, view: JobView, clock: Clock, walls: list[float]) -> JobOutcome:
    # A table job reads CSV/Parquet on purpose; only a JSONL job is checked for a table given by mistake.
    wrong_format = not_jsonl(config.input_path) if config.table is None else None
    if wrong_format is not None:
        return JobOutcome(ExitCode.USAGE, wrong_format)
    # Commits every 10 ms at most: cheap with WAL, and a kill then re-sends only what was in flight plus the
    # results of the last few milliseconds.
    store = open_store(
        config.output_path,
        _settings(config),
        config.restart,
        config.resume(),
        commit_interval=_COMMIT_INTERVAL,
        clock=clock.now,
    )
    if isinstance(store, JobOutcome):
        return store
    order: Literal["completion", "input"] = "input" if config.ordered else "completion"

    def open_output() -> OutputFile:
        if config.table is not None and is_table_output(config.output_path):
            return TableWriter(config.input_path, config.output_path, store.output)
        return OutputWriter.open(config.output_path, store.output, order, clock=clock.now)

    job = DurableJob(
        store,
        open_output,
        clock=clock,
        retry_failed=config.retry_failed,
        commit_interval=_COMMIT_INTERVAL,
        unsaved_max=_UNSAVED_MAX,
    )
    try:
        with job:
            if config.retry_failed:
                view.say(f"retrying {job.retried} failed item(s)")
            return await _run(config, job, view, clock, walls)
    except ConfigError as exc:
        return JobOutcome(ExitCode.USAGE, str(exc))


async def _run(config: JobConfig, job: DurableJob, view: JobView, clock: Clock, walls: list[float]) -> JobOutcome:
    store = job.store
    before = store.counts()
    view.started(before.done + before.failed + before.invalid + before.duplicate)
    total_lines: int | None = None
    priced = load_prices(config.prices)

    def on_problem(bad: InputProblem) -> None:
        if bad.duplicate:
            # Not an output line: the id's first line has that. Told here once, counted in the summary.
            view.say(f"line {bad.line}: {bad.message}")
            view.skipped()
        else:
            view.emit(RequestCompleted(at=clock.now(), result=bad.to_result()))

    admission = Admission(store, on_problem)

    ledger: SpendLedger | None = None
    engine_cap = config.max_cost
    if config.max_cost is not None:
        # The cap is the job's: what earlier runs spent (or may have, if killed) is taken off this run's share.
        ledger = SpendLedger(store, priced, config.provider)
        engine_cap = config.max_cost - sum(store.spent())
        if engine_cap <= 0:
            return JobOutcome(
                ExitCode.BUDGET,
                f"stopped before sending anything: {ledger.describe(config.max_cost)}. "
                f"{unfinished_count(store.counts(), _count_lines(config.input_path))} item(s) not finished; "
                "to go on, raise the cap: "
                f"{with_max_cost(config.resume())}",
            )
    timeline = TimelineRecorder(store.path, now=clock.now, wall=config.wall_clock, prices=config.prices)

    async def items() -> AsyncIterator[RequestItem]:
        rows = None
        if config.table is not None:
            rows = table_requests(config.input_path, config.table, config.defaults, config.provider)
        async for item, _ in admission.items(config.input_path, config.defaults, config.provider, rows):
            yield item if ledger is None else ledger.track(item)

    warmup = _warmup(config)
    sinks: list[Any] = (
        [*view.sinks, timeline] + ([] if ledger is None else [ledger]) + ([] if warmup is None else [warmup])
    )
    left = None
    if config.deadline is not None:
        wall_now = config.wall_clock()
        left = deadline_instant(store, wall_now + config.deadline) - wall_now
    engine, standard = _engines(config, sinks, engine_cap, priced, left, clock)
    timeline.watch(engine.statistics)
    view.engine(engine.statistics)
    started = clock.now()
    stop_reason: str | None = None
    exit_code = ExitCode.OK

    def drain() -> float:
        view.say(
            "Stopping: no new requests; waiting for those in flight "
            f"(up to {config.drain_timeout:g} s). Press Ctrl-C again to stop now."
        )
        engine.stop_admitting()
        if standard is not None:
            standard.stop_admitting()
        return config.drain_timeout

    async with engine, standard or contextlib.nullcontext(), anyio.create_task_group() as tg:

        async def count_lines() -> None:
            # In a thread, so a multi-GB input starts sending at once; the ETA appears when it is done.
            nonlocal total_lines
            count = count_rows if config.table is not None else _count_lines
            total_lines = await anyio.to_thread.run_sync(count, config.input_path, abandon_on_cancel=True)
            view.counted(total_lines)

        tg.start_soon(count_lines)
        try:
            async with job.running(on_interrupt=drain, on_tick=lambda: timeline.persist(store.commit)):
                source = items() if warmup is None else warmup.gate(items())
                results = engine.as_completed(source) if standard is None else flex_results(engine, standard, source)
                async for result in results:
                    job.record(result)
        except BudgetExceededError as exc:
            stop_reason, exit_code = str(exc), ExitCode.BUDGET
        except RunAbortedError as exc:
            stop_reason, exit_code = str(exc), ExitCode.ABORTED
        finally:
            timeline.close()
            tg.cancel_scope.cancel()
    walls.append(clock.now() - started)
    own = admission.kept_own_note()
    if own is not None:
        view.say(own)
    if admission.changed is not None:
        return JobOutcome(ExitCode.USAGE, admission.changed)
    if job.failed is not None:
        return no_space_outcome(job.failed, config.resume(), dataclasses.asdict(store.counts()))
    counts = store.counts()
    summary = dataclasses.asdict(counts)
    # Lines never read (admission stops early) are unfinished too, not only the stored pending items.
    lines = total_lines if total_lines is not None else _count_lines(config.input_path)
    unfinished = unfinished_count(counts, lines)
    resume = config.resume()
    stats = engine.statistics()
    note = _unpriced_note(stats.unpriced) + _earlier_runs_note(store, counts.done + counts.failed, stats)
    if job.interrupts:
        return JobOutcome(
            ExitCode.INTERRUPTED,
            f"interrupted: {unfinished} item(s) not finished. Resume with: {resume}{note}",
            summary,
        )
    if stop_reason is not None and exit_code == ExitCode.BUDGET and ledger is not None and config.max_cost:
        return JobOutcome(
            exit_code,
            # The engine's figures are this run's share of the cap; the job's are what the user set and spent.
            f"stopped at the cost cap: {ledger.describe(config.max_cost)}; the next request would not fit. "
            f"{unfinished} item(s) not finished; to go on, raise the cap: {with_max_cost(resume)}{note}",
            summary,
        )
    if stop_reason is not None:
        return JobOutcome(
            exit_code,
            f"stopped: {stop_reason}. {unfinished} item(s) not finished; fix the cause and resume with: {resume}"
            + note,
            summary,
        )
    return finished_outcome(counts, config.output_path, note, summary)


def _engines(
    config: JobConfig,
    sinks: list[Any],
    engine_cap: float | None,
    priced: PriceTable,
    left: float | None,
    clock: Clock,
) -> tuple[Engine, Engine | None]:
    """The run's engine, and with flex a second, standard engine: the first asks for flex once per item (billed
    at the batch rate, waiting at most half the time `left` before the deadline), the second takes what flex did
    not serve. One --max-cost covers both."""
    options: dict[str, Any] = {
        "provider": config.provider,
        "api_key": config.api_key,
        "base_url": config.base_url,
        "limits": config.limits,
        "max_concurrency": config.max_concurrency,
        "max_cost": engine_cap,
        "prices": config.prices,
        "minute": config.minute,
        "transport": config.transport,
        "sinks": sinks,
        "clock": clock,
        "shared_limits": config.shared_limits,
        "shared_limits_fallback": config.shared_limits_fallback,
        "shared_limits_name": config.shared_limits_name
        or shared_pool_name(config.provider, config.api_key, config.base_url, config.defaults.model),
    }
    if config.service_tier != "flex":
        return Engine(**options, retry=config.retry, timeouts=config.timeouts), None
    flex = Engine(
        **{
            **options,
            **flex_options(flex_timeout_for(left, config.flex_timeout)),
            "prices": priced.at_batch_rate(),
            "sinks": flex_sinks(sinks),
        }
    )
    standard = Engine(**options, retry=config.retry, timeouts=config.timeouts)
    standard.share_cost_cap(flex)
    return flex, standard


def _warmup(config: JobConfig) -> OnlineWarmup | None:
    """The cache warm-up of this run, if it has one: prefixes shared by at least two requests of the input."""
    if not config.cache_warmup:
        return None
    found = SharedPrefixes.scan(config.input_path, config.defaults, config.provider, config.table)
    return OnlineWarmup(found) if found.shared else None


def _unpriced_note(unpriced: Mapping[str, int]) -> str:
    """Answers whose model has no price: their cost is unknown, and the final message says so."""
    if not unpriced:
        return ""
    models = ", ".join(repr(m) for m in sorted(unpriced))
    return (
        f". Cost unknown for {sum(unpriced.values())} answer(s): no price for {models} "
        "(give a price file with --prices)"
    )


def _earlier_runs_note(store: JobStore, finished: int, stats: EngineStatistics) -> str:
    """For a resumed job: what all its runs together cost, since the summary covers this run only."""
    if finished <= stats.succeeded + stats.failed:
        return ""  # nothing finished in an earlier run
    usage, cost, unpriced = store.totals()
    tokens = f"{usage.total_input_tokens:,} tokens in, {usage.output_tokens:,} out"
    unknown = f" plus {unpriced:,} unpriced answer(s)" if unpriced else ""
    return f". All runs of this job together: {finished:,} item(s) finished, {tokens}, ${cost:.4f}{unknown}"


def describe(config: JobConfig) -> dict[str, Any]:
    """What the run will do, for logs: never includes the key."""
    return {
        "input": str(config.input_path),
        "output": str(config.output_path),
        "provider": config.provider,
        "endpoint": config.settings_base,
    }
