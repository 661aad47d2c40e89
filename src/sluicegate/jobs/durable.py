"""What every durable job shares: its store next to the output file, the settings that pin a resume to the same
input, and `DurableJob`, the frame a run of the job works in.

A job store is found from the output path alone, so a re-run with the same command finds the results already paid
for; the settings stored with it (input, endpoint, defaults) make a resume with other ones a clear refusal instead
of a mixed output.

The order of effects is what makes a crash harmless: a result is committed to the store before its line is
written, and the output file is derived from the store. `DurableJob` keeps that order for every kind of job (the
online run, the batch job, the routes to come): it saves as results come in, stops the work on Ctrl-C, SIGTERM or a
full disk, and makes the last save in plain synchronous calls that no cancellation can interrupt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import anyio
import anyio.abc

from .._clock import Clock
from .._exceptions import ConfigError
from .._models import Result
from ._disk import NoSpace, no_space
from ._messages import mismatch_message
from .outcome import ExitCode, JobOutcome
from .reader import Defaults
from .store import JobMismatchError, JobStore

__all__ = ["DurableJob", "OutputFile", "file_settings", "input_signature", "open_store", "store_path_for"]


def store_path_for(output: Path) -> Path:
    """The job store of an output file: next to the file the path leads to, so that two paths to one file (a
    symlink, a symlinked folder, `..`) are one job, locked once."""
    real = output.resolve()
    return real.with_name(real.name + ".sluicegate.db")


def open_store(
    output: Path, settings: dict[str, str], restart: bool, resume: str, **options: Any
) -> JobStore | JobOutcome:
    """The job store next to `output`, or the usage-error outcome saying why it cannot be used for this job (for a
    changed setting: which, its stored and new values, and the command that resumes with the stored ones, or an
    output that is the input file itself, named in `settings["input"]` by `file_settings`)."""
    source = settings.get("input")
    if source is not None and _same_file(Path(source), output):
        # Checked before anything opens the output: the writer would cut the input to the results' first line.
        return JobOutcome(
            ExitCode.USAGE,
            f"refusing to run: the output {output} is the input file itself, and writing results there would "
            f"destroy the input. Give another output file, e.g. -o {output.with_name(output.stem + '.out.jsonl')}",
        )
    try:
        return JobStore.open(store_path_for(output), settings=settings, restart=restart, **options)
    except JobMismatchError as exc:
        return JobOutcome(ExitCode.USAGE, mismatch_message(exc.changes, resume, str(exc)))
    except ConfigError as exc:  # e.g. another run holds this job's store
        return JobOutcome(ExitCode.USAGE, str(exc))


def _same_file(a: Path, b: Path) -> bool:
    """Two paths to one file: the same path once resolved, or a hard link."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


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


class OutputFile(Protocol):
    """The output a job writes from its store: JSONL (`writer.py`) or a table (`table_output.py`)."""

    @property
    def path(self) -> Path: ...

    @property
    def closed(self) -> bool: ...

    def write_committed(self) -> int: ...

    def rewrite(self) -> None: ...

    def close(self) -> None: ...


def _nothing() -> None:
    """The default tick: nothing besides the save."""


class DurableJob:
    """One run of a durable job over its store and output file, from the reset of failed items to the last save.

    `with DurableJob(...) as job:` resets the failed items (with `retry_failed`) and opens the output; on the way
    out, also when something unforeseen escapes, everything recorded is committed and written and the store is
    closed. The work itself runs in `async with job.running():`, which watches for Ctrl-C and SIGTERM, saves every
    `commit_interval` seconds (on `clock`) when one is given, and, after the work, makes the last save and raises
    the work's error, if it raised one.

    A full disk while saving stops the work instead of ending the process with a traceback: `failed` says which file
    and why; what was committed before is safe, and the answers not yet committed are simply pending again.
    """

    def __init__(
        self,
        store: JobStore,
        open_output: Callable[[], OutputFile],
        *,
        clock: Clock,
        retry_failed: bool = False,
        commit_interval: float | None = None,
        unsaved_max: int | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retry_failed = retry_failed
        self.retried = 0  # failed items reset to pending by `retry_failed`
        self.failed: NoSpace | None = None
        self.interrupts = 0  # Ctrl-C / SIGTERM received while the work ran
        self._open_output = open_output
        self._output: OutputFile | None = None
        self._commit_interval = commit_interval
        # Answers recorded but not yet committed are what a kill would send again: with a bound, commit as soon as
        # this many wait, even inside the commit window (a busy loop can stretch the window; a count cannot).
        self._unsaved_max = unsaved_max
        self.unsaved = 0
        self._work: anyio.CancelScope | None = None

    @property
    def output(self) -> OutputFile:
        if self._output is None:
            raise RuntimeError("the job's output is opened by entering the DurableJob")
        return self._output

    def __enter__(self) -> DurableJob:
        try:
            if self.retry_failed:
                self.retried = self.store.reset_failed()
            self._output = self._open_output()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Also when something unforeseen escapes: every answer already received is committed and written (unless
        # the disk is full, which `failed` already says).
        try:
            self.store.commit()
            if self._output is not None and not self._output.closed:
                self._output.write_committed()
                self._output.close()
        except (OSError, sqlite3.Error) as error:
            if self._no_space(error) is None:
                raise
        finally:
            with contextlib.suppress(OSError, sqlite3.Error):
                self.store.close()

    def record(self, result: Result) -> bool:
        """Store a result and save what is due; False when it was not stored (an outcome that is not final, such
        as a stopped run's, or an item that already had its result)."""
        recorded = self.store.record_result(result)
        if recorded:
            self.unsaved += 1
        self.save()
        return recorded

    def save(self, *, now: bool = False) -> None:
        """Commit and write what waits: at once with `now` or once `unsaved_max` answers wait, else when the store's
        commit window has passed. A full disk stops the work (see `failed`)."""
        if self.failed is not None:
            return
        try:
            if now or (self._unsaved_max is not None and self.unsaved >= self._unsaved_max):
                self.store.commit()
            elif not self.store.maybe_commit():
                return
            self.unsaved = 0
            self.output.write_committed()
        except (OSError, sqlite3.Error) as exc:
            self.failed = self._no_space_or_raise(exc)
            if self._work is not None:
                self._work.cancel()

    @contextlib.asynccontextmanager
    async def running(
        self, *, on_interrupt: Callable[[], float] | None = None, on_tick: Callable[[], None] = _nothing
    ) -> AsyncIterator[None]:
        """Run the job's work in the body, then make the last save, then raise the work's error if it raised one.

        The first Ctrl-C or SIGTERM calls `on_interrupt`, which returns how many seconds the work may take to
        drain (without it, the work stops at once); the next one stops it at once. `on_tick` runs after each
        periodic save. A work stopped by a signal or a full disk ends the block normally: `interrupts` and
        `failed` say why.
        """
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            try:
                with anyio.CancelScope() as work:
                    self._work = work
                    if sys.platform != "win32":
                        tg.start_soon(self._watch_signals, tg, work, on_interrupt)
                    if self._commit_interval is not None:
                        tg.start_soon(self._tick, self._commit_interval, on_tick)
                    try:
                        yield
                    except Exception as exc:  # raised again below: in the task group it would come out as a group
                        error = exc
            finally:
                # Plain synchronous calls: no cancellation can interrupt the last commit and write.
                self._work = None
                self._finish()
                tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _watch_signals(
        self, tg: anyio.abc.TaskGroup, work: anyio.CancelScope, on_interrupt: Callable[[], float] | None
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                self.interrupts += 1
                if self.interrupts == 1 and on_interrupt is not None:
                    tg.start_soon(self._cancel_after, work, on_interrupt())
                else:
                    work.cancel()

    async def _cancel_after(self, work: anyio.CancelScope, seconds: float) -> None:
        await self.clock.sleep(seconds)
        work.cancel()

    async def _tick(self, interval: float, on_tick: Callable[[], None]) -> None:
        # Without it the last answer before a lull (a 429 pause, a slow batch) waits for the next answer.
        while True:
            await self.clock.sleep(interval)
            self.save()
            on_tick()

    def _finish(self) -> None:
        """The last commit and write (and the full rewrite after --retry-failed), then close the file."""
        try:
            if self.failed is None:
                self.store.commit()
                self.output.write_committed()
                if self.retry_failed:
                    self.output.rewrite()  # the retried items' old error lines are replaced: one line per id
            self.output.close()
        except (OSError, sqlite3.Error) as exc:
            self.failed = self.failed or self._no_space_or_raise(exc)

    def _no_space(self, exc: OSError | sqlite3.Error) -> NoSpace | None:
        return no_space(exc, self.store.path, self.output.path if self._output is not None else self.store.path)

    def _no_space_or_raise(self, exc: OSError | sqlite3.Error) -> NoSpace:
        problem = self._no_space(exc)
        if problem is None:
            raise exc
        return problem
