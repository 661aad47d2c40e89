"""A bounded per-second timeline of a run (throughput, failures, tokens, cost, limits, latency), kept in the job store.

The recorder is an event sink: it adds each engine event to the row of its second and, a few times a second,
samples the limiter (the limits learnt so far, what admission waits for). Rows are written to the store about once
a second, right after the store's own commit, so they never wait for its lock. Each run of a job is a segment of
its own; a resumed job shows all of them.

Size stays bounded whatever the job's length: past `ROW_BUDGET` rows in a segment, neighbouring rows are merged
and the segment's row width doubles (1 s, 2 s, 4 s, ...), so a segment never holds more than `ROW_BUDGET` rows.
Latencies are kept as log-spaced histograms per row (see `timeline_rows.py`), never as samples.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from .._events import AttemptFailed, Event, RequestAdmitted, RequestCompleted
from .._stats import EngineStatistics
from ..pricing import Price, PriceTable, default_table
from .timeline_rows import Row, latency_bin

__all__ = ["ROW_BUDGET", "TimelineRecorder"]

ROW_BUDGET = 2048
_FLUSH_EVERY = 1.0  # seconds between writes to the store
_SAMPLE_EVERY = 0.25  # seconds between samples of the limiter
_EXAMPLES = 3  # messages kept per kind of failed attempt


class TimelineRecorder:
    """Event sink that keeps the timeline of one run; `persist` and `close` write it to the job store at `path`.

    It must be cheap (it runs on the event loop for every event) and must never break or stall the run: a failed
    write is retried at the next flush, and the store's lock is never waited for.
    """

    def __init__(
        self,
        path: Path,
        *,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,  # dates the run's start in the report (epoch seconds)
        prices: PriceTable | None = None,
        row_budget: int = ROW_BUDGET,
    ) -> None:
        self._path = path
        self._now = now
        self._prices = prices or default_table()
        self._budget = row_budget
        self._t0 = now()
        self._started = wall()
        self._width = 1.0
        self._rows: dict[int, Row] = {}
        self._dirty: set[int] = set()
        self._rewrite = False
        self._examples: dict[str, list[str]] = {}
        self._price_cache: dict[str, Price | None] = {}
        self._statistics: Callable[[], EngineStatistics] | None = None
        self._next_sample = self._t0
        self._last_flush = self._t0
        self._run: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._hot = Row()
        self._hot_start = self._hot_end = -math.inf

    def watch(self, statistics: Callable[[], EngineStatistics]) -> None:
        """Sample the limiter through `statistics` (the engine's) a few times a second."""
        self._statistics = statistics

    # -- recording ---------------------------------------------------------------------------------------------

    def _row(self, at: float) -> Row:
        # Nearly every event falls in the current row: two comparisons, no dict or set work.
        if self._hot_start <= at < self._hot_end:
            return self._hot
        slot = int(max(0.0, at - self._t0) / self._width)
        row = self._rows.get(slot)
        if row is None:
            row = self._rows[slot] = Row()
            if len(self._rows) > self._budget:
                self._coarsen()
                return self._row(at)
        self._dirty.add(slot)
        self._hot = row
        self._hot_start = self._t0 + slot * self._width if slot else -math.inf
        self._hot_end = self._t0 + (slot + 1) * self._width
        return row

    def _cool(self) -> None:
        """Forget the current row, so the next event marks its row changed again."""
        self._hot_start = self._hot_end = -math.inf

    def _coarsen(self) -> None:
        """Double the row width: each pair of neighbouring rows becomes one."""
        merged: dict[int, Row] = {}
        for slot in sorted(self._rows):
            target = merged.get(slot // 2)
            if target is None:
                merged[slot // 2] = self._rows[slot]
            else:
                target.merge(self._rows[slot])
        self._rows = merged
        self._width *= 2
        self._dirty = set(merged)
        self._rewrite = True
        self._cool()

    def __call__(self, event: Event) -> None:
        """Add one event to its row. Limits are not read from LimitsObserved but sampled from the limiter, which
        has combined the server's view with its own by then."""
        if isinstance(event, RequestCompleted):
            self._completed(event)
        elif isinstance(event, RequestAdmitted):
            row = self._row(event.at)
            row.admitted += 1
            if event.in_flight > row.in_flight_max:
                row.in_flight_max = event.in_flight
        elif isinstance(event, AttemptFailed):
            self._failed(event)
        if event.at >= self._next_sample:
            self.sample(event.at)

    def _completed(self, event: RequestCompleted) -> None:
        result = event.result
        row = self._row(event.at)
        if result.error is not None:
            row.failed += 1
            return
        row.succeeded += 1
        usage = result.usage
        row.input_tokens += usage.input_tokens
        row.output_tokens += usage.output_tokens
        row.cache_write_tokens += usage.cache_creation_input_tokens
        row.cache_read_tokens += usage.cache_read_input_tokens
        row.latency[latency_bin(result.latency)] += 1
        if result.ttft is not None:
            row.ttft[latency_bin(result.ttft)] += 1
        if result.cost is None:
            row.unpriced += 1
            return
        row.cost += result.cost
        model = str((result.message or {}).get("model") or "")
        price = self._price_cache.get(model, ...)
        if price is ...:
            price = self._price_cache[model] = self._prices.price_for(model)
        if price is not None:
            mtok = 1_000_000
            row.cost_input += usage.input_tokens * price.input / mtok
            row.cost_output += usage.output_tokens * price.output / mtok
            row.cost_cache_write += (
                usage.cache_creation_5m_input_tokens * price.cache_write_5m
                + usage.cache_creation_1h_input_tokens * price.cache_write_1h
            ) / mtok
            row.cost_cache_read += usage.cache_read_input_tokens * price.cache_read / mtok

    def _failed(self, event: AttemptFailed) -> None:
        row = self._row(event.at)
        status = event.status
        if status == 429:
            kind = "rate_limited"
            row.rate_limited += 1
        elif status == 529:
            kind = "overloaded"
            row.overloaded += 1
        elif status is not None and status >= 500:
            kind = "server_errors"
            row.server_errors += 1
        else:
            kind = event.reason
            row.other_failures += 1
        examples = self._examples.setdefault(kind, [])
        if len(examples) < _EXAMPLES:
            label = f"HTTP {status}" if status is not None else event.reason
            examples.append(f"{label}: {event.message}"[:300])

    def sample(self, at: float) -> None:
        """Record the limiter's state now: the limits learnt so far and which gate admission waits for."""
        self._next_sample = at + _SAMPLE_EVERY
        if self._statistics is None:
            return
        limiter = self._statistics().limiter
        row = self._row(at)
        row.samples += 1
        if limiter.waiting:
            row.waiting_samples += 1
            if limiter.binding is not None:
                row.binding[limiter.binding] += 1
        row.rpm = limiter.requests_per_minute
        row.itpm = limiter.input_tokens_per_minute
        row.otpm = limiter.output_tokens_per_minute
        row.tpm = limiter.tokens_per_minute
        row.concurrency = limiter.concurrency_limit
        if limiter.in_flight > row.in_flight_max:
            row.in_flight_max = limiter.in_flight

    # -- persistence -------------------------------------------------------------------------------------------

    def persist(self, commit: Callable[[], None]) -> None:
        """About once a second: `commit` the store (so its lock is free), then write the changed rows."""
        now = self._now()
        if now - self._last_flush < _FLUSH_EVERY:
            return
        self.sample(now)
        try:
            commit()
        except (OSError, sqlite3.Error):
            # A full disk, say: the run's own commit path meets the same error and handles it; the rows wait.
            self._last_flush = now
            return
        self.flush()

    def flush(self) -> None:
        """Write the changed rows now. Call only while the job store holds no open transaction."""
        self._last_flush = self._now()
        run = self._run
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._write(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            self._run = run  # a run row inserted by the rolled-back write does not exist
            return  # busy or broken: the rows stay dirty and go out with a later flush
        self._dirty.clear()
        self._rewrite = False
        self._cool()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 0")  # never stall the event loop on the store's lock
            self._conn = conn
        return self._conn

    def _write(self, conn: sqlite3.Connection) -> None:
        if self._run is None:
            cur = conn.execute(
                "INSERT INTO timeline_runs (started, ended, width, info) VALUES (?, ?, ?, '{}')",
                (self._started, self._started, self._width),
            )
            self._run = cur.lastrowid
        ended = self._started + (self._now() - self._t0)
        info = json.dumps({"examples": self._examples}, separators=(",", ":"))
        conn.execute(
            "UPDATE timeline_runs SET ended = ?, width = ?, info = ? WHERE run = ?",
            (ended, self._width, info, self._run),
        )
        if self._rewrite:
            conn.execute("DELETE FROM timeline WHERE run = ?", (self._run,))
        conn.executemany(
            "INSERT OR REPLACE INTO timeline (run, slot, data) VALUES (?, ?, ?)",
            [(self._run, slot, self._rows[slot].to_json()) for slot in sorted(self._dirty)],
        )

    def close(self) -> None:
        """Write what is left and let go of the store. Call after the store's last commit."""
        self.sample(self._now())
        self.flush()
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
