"""A durable run over a JSONL file: read lazily, skip what is done, send through the engine, commit, then write.

The order of effects is what makes a crash harmless: a result is committed to the store before its line is
written, and the output file is derived from the store (a partial last line is cut on resume). A killed run
re-sends only the items whose results were not committed yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx2
from rich.console import Console

from .._clock import SystemClock
from .._config import Timeouts
from .._events import RequestCompleted
from .._exceptions import BudgetExceededError, ConfigError, RunAbortedError
from .._models import RequestItem
from .._stats import EngineStatistics
from ..engine import Engine
from ..limits.limiter import Limits
from ..pricing import PriceTable, load_prices
from ..progress import ProgressDisplay, ProgressTracker
from ..retry import RetryPolicy
from .admission import Admission
from .flex import flex_options, flex_results
from .reader import Defaults
from .store import JobMismatchError, JobStore, StoreCounts
from .timeline import TimelineRecorder
from .warmup import OnlineWarmup, SharedPrefixes
from .writer import OutputWriter

__all__ = ["ExitCode", "JobConfig", "JobOutcome", "run_job", "store_path_for"]

_COMMIT_INTERVAL = 0.01
# Answers recorded but not yet committed are what a kill would send again: commit as soon as this many wait, even
# inside the commit window (a busy loop can stretch the window; a count cannot stretch).
_UNSAVED_MAX = 2


class ExitCode:
    OK = 0
    FAILED_ITEMS = 1  # the run finished but some items ended in error (including invalid input lines)
    USAGE = 2  # bad flags or a refused resume (click uses 2 for usage errors too)
    BUDGET = 3  # --max-cost stopped admission; unfinished items stay pending
    ABORTED = 4  # bad key, spend cap / quota: the run stopped; unfinished items stay pending
    INTERRUPTED = 130  # Ctrl-C; unfinished items stay pending


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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain_timeout: float = 30.0
    service_tier: Literal["standard", "flex"] = "standard"  # flex: OpenAI's, at batch prices (see jobs/flex.py)
    flex_timeout: float = 600.0  # a flex answer slower than this is asked again on the standard tier
    cache_warmup: bool = True  # place breakpoints on shared prefixes and prime each one first (see jobs/warmup.py)
    # An in-process transport instead of the network: for benchmarks and tests of the job machinery itself.
    transport: httpx2.AsyncBaseTransport | None = field(default=None, repr=False)


@dataclass
class JobOutcome:
    exit_code: int
    message: str
    counts: dict[str, int] = field(default_factory=dict)


def store_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".sluicegate.db")


def open_store(output: Path, settings: dict[str, str], restart: bool, **options: Any) -> JobStore | JobOutcome:
    """The job store next to `output`, or the usage-error outcome saying why it cannot be used for this job."""
    try:
        return JobStore.open(store_path_for(output), settings=settings, restart=restart, **options)
    except JobMismatchError as exc:
        hint = "the input file changed since the last run" if "input_signature" in str(exc) else str(exc)
        return JobOutcome(
            ExitCode.USAGE,
            f"refusing to resume: {hint}. Add --restart to start over (results so far are discarded), "
            "or write to another output file.",
        )
    except ConfigError as exc:  # e.g. another run holds this job's store
        return JobOutcome(ExitCode.USAGE, str(exc))


def input_signature(path: Path) -> str:
    """Size plus a hash of the first and last MiB: a changed or extended input is noticed before anything is
    sent, without reading a multi-GB file twice. (Per-item fingerprints catch edits in the middle.)"""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()[:16]}"


def file_settings(input_path: Path, defaults: Defaults) -> dict[str, str]:
    """What a job store remembers of the input and its defaults, to refuse resuming with other ones."""
    return {
        "input": str(input_path.resolve()),
        "input_signature": input_signature(input_path),
        "model": defaults.model or "",
        "max_tokens": str(defaults.max_tokens or ""),
        "system": defaults.system or "",
    }


def _settings(config: JobConfig) -> dict[str, str]:
    return {
        "provider": config.provider,
        "endpoint": config.settings_base,
        **file_settings(config.input_path, config.defaults),
        "order": "input" if config.ordered else "completion",
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


class _Saver:
    """Commits recorded results and appends their lines: once per commit window, or at once when answers pile up."""

    def __init__(self, store: JobStore, writer: OutputWriter) -> None:
        self._store = store
        self._writer = writer
        self.unsaved = 0

    def save(self) -> None:
        if self.unsaved >= _UNSAVED_MAX:
            self._store.commit()
        elif not self._store.maybe_commit():
            return
        self.unsaved = 0
        self._writer.write_committed()


async def run_job(config: JobConfig, *, console: Console, quiet: bool = False) -> JobOutcome:
    """Run (or resume) the job described by `config`; never raises for per-item problems."""
    clock = SystemClock()
    # Commits every 10 ms at most: cheap with WAL, and a kill then re-sends only what was in flight plus the
    # results of the last few milliseconds.
    store = open_store(config.output_path, _settings(config), config.restart, commit_interval=_COMMIT_INTERVAL)
    if isinstance(store, JobOutcome):
        return store
    try:
        if config.retry_failed:
            reset = store.reset_failed()
            console.print(f"retrying {reset} failed item(s)")
        order: Literal["completion", "input"] = "input" if config.ordered else "completion"
        writer = OutputWriter.open(config.output_path, store, order)
        before = store.counts()
        already = before.done + before.failed + before.invalid
        priced = load_prices(config.prices)
        tracker = ProgressTracker(clock=clock, total=None, already_done=already, uncached_cost=priced.cost)
        admission = Admission(store, lambda bad: tracker(RequestCompleted(at=clock.now(), result=bad.to_result())))
        timeline = TimelineRecorder(store.path, now=clock.now, prices=config.prices)

        async def items() -> AsyncIterator[RequestItem]:
            async for item, _ in admission.items(config.input_path, config.defaults, config.provider):
                yield item

        warmup = _warmup(config)
        options: dict[str, Any] = {
            "provider": config.provider,
            "api_key": config.api_key,
            "base_url": config.base_url,
            "limits": config.limits,
            "max_concurrency": config.max_concurrency,
            "max_cost": config.max_cost,
            "prices": config.prices,
            "minute": config.minute,
            "transport": config.transport,
            "sinks": [tracker, timeline] if warmup is None else [tracker, timeline, warmup],
        }
        # Flex: the main engine asks for flex once per item; a second, standard engine takes what flex did not serve.
        flex = config.service_tier == "flex"
        engine = Engine(
            **options,
            **(flex_options(config.flex_timeout) if flex else {"retry": config.retry, "timeouts": config.timeouts}),
        )
        standard = Engine(**options, retry=config.retry, timeouts=config.timeouts) if flex else None
        timeline.watch(engine.statistics)
        started = time.monotonic()
        stop_reason: str | None = None
        exit_code = ExitCode.OK
        interrupts = 0
        async with engine, standard or contextlib.nullcontext(), anyio.create_task_group() as tg:
            display = ProgressDisplay(tracker, console=console, statistics=engine.statistics, clock=clock)
            if not quiet:
                tg.start_soon(display.run)

            async def count_lines() -> None:
                # In a thread, so a multi-GB input starts sending at once; the ETA appears when it is done.
                tracker.total = await anyio.to_thread.run_sync(_count_lines, config.input_path, abandon_on_cancel=True)

            tg.start_soon(count_lines)

            async def watch_signals(scope: anyio.CancelScope) -> None:
                nonlocal interrupts
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupts += 1
                        if interrupts == 1:
                            console.print(
                                "[bold]Stopping:[/] no new requests; waiting for those in flight "
                                f"(up to {config.drain_timeout:g} s). Press Ctrl-C again to stop now."
                            )
                            engine.stop_admitting()
                            if standard is not None:
                                standard.stop_admitting()
                            scope.deadline = anyio.current_time() + config.drain_timeout
                        else:
                            scope.cancel()

            saver = _Saver(store, writer)

            async def commit_ticker() -> None:
                # Without it the last answer before a lull (a 429 pause, a slow batch) waits for the next answer.
                while True:
                    await anyio.sleep(_COMMIT_INTERVAL)
                    saver.save()
                    timeline.persist(store.commit)

            tg.start_soon(commit_ticker)

            with anyio.CancelScope() as work:
                if sys.platform != "win32":
                    tg.start_soon(watch_signals, work)
                try:
                    source = items() if warmup is None else warmup.gate(items())
                    results = (
                        engine.as_completed(source)
                        if standard is None
                        else flex_results(engine, standard, source, priced)
                    )
                    async for result in results:
                        if store.record_result(result):
                            saver.unsaved += 1
                        saver.save()
                except BudgetExceededError as exc:
                    stop_reason, exit_code = str(exc), ExitCode.BUDGET
                except RunAbortedError as exc:
                    stop_reason, exit_code = str(exc), ExitCode.ABORTED
            # Plain synchronous calls: no cancellation can interrupt the final commit and write.
            store.commit()
            timeline.close()
            writer.write_committed()
            if config.retry_failed:
                writer.rewrite()  # the retried items' old error lines are replaced: one line per id
            writer.close()
            tg.cancel_scope.cancel()
        wall = time.monotonic() - started
        if not quiet:
            display.print_summary(wall)
        if admission.changed is not None:
            return JobOutcome(ExitCode.USAGE, admission.changed)
        counts = store.counts()
        summary = dataclasses.asdict(counts)
        resume = f"sluicegate run {config.input_path} -o {config.output_path}"
        stats = engine.statistics()
        note = _unpriced_note(stats.unpriced) + _earlier_runs_note(store, counts.done + counts.failed, stats)
        if interrupts:
            return JobOutcome(
                ExitCode.INTERRUPTED,
                f"interrupted: {counts.pending} item(s) not finished. Resume with: {resume}{note}",
                summary,
            )
        if stop_reason is not None:
            return JobOutcome(
                exit_code,
                f"stopped: {stop_reason}. {counts.pending} item(s) pending; fix the cause and resume with: {resume}"
                + note,
                summary,
            )
        return finished_outcome(counts, config.output_path, note, summary)
    except ConfigError as exc:
        return JobOutcome(ExitCode.USAGE, str(exc))
    finally:
        store.close()


def _warmup(config: JobConfig) -> OnlineWarmup | None:
    """The cache warm-up of this run, if it has one: prefixes shared by at least two requests of the input."""
    if not config.cache_warmup:
        return None
    found = SharedPrefixes.scan(config.input_path, config.defaults, config.provider)
    return OnlineWarmup(found) if found.shared else None


def finished_outcome(counts: StoreCounts, output: Path, note: str, summary: dict[str, int]) -> JobOutcome:
    """The outcome of a job that ran to its end: all succeeded (exit 0), or some failed or invalid (exit 1)."""
    if counts.failed or counts.invalid:
        return JobOutcome(
            ExitCode.FAILED_ITEMS,
            f"finished with {counts.failed} failed and {counts.invalid} invalid item(s); "
            f"see {output} (re-run failed ones with --retry-failed){note}",
            summary,
        )
    return JobOutcome(ExitCode.OK, f"all {counts.done} item(s) succeeded; results in {output}{note}", summary)


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
