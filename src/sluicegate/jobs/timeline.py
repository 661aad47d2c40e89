"""A bounded per-second timeline of a run (throughput, failures, tokens, cost, limits, latency), kept in the job store.

The recorder is an event sink: it adds each engine event to the row of its second and, a few times a second,
samples the limiter (the limits learnt so far, what admission waits for). Rows are written to the store about once
a second, right after the store's own commit, so they never wait for its lock. Each run of a job is a segment of
its own; a resumed job shows all of them.

Size stays bounded whatever the job's length: past `ROW_BUDGET` rows in a segment, neighbouring rows are merged
and the segment's row width doubles (1 s, 2 s, 4 s, ...), so a segment never holds more than `ROW_BUDGET` rows.
Latencies are kept as log-spaced histograms per row (`LATENCY_BINS` bins), never as samples.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._events import AttemptFailed, Event, RequestAdmitted, RequestCompleted
from .._stats import EngineStatistics
from ..pricing import Price, PriceTable, default_table

__all__ = [
    "COUNTERS",
    "LATENCY_BINS",
    "ROW_BUDGET",
    "Row",
    "Segment",
    "TimelineRecorder",
    "bin_lower",
    "latency_bin",
    "read_segments",
]

ROW_BUDGET = 2048
_FLUSH_EVERY = 1.0  # seconds between writes to the store
_SAMPLE_EVERY = 0.25  # seconds between samples of the limiter
_EXAMPLES = 3  # messages kept per kind of failed attempt

# Latency histogram: bin 0 holds everything under 10 ms * _STEP, then one bin per factor of 10**(1/8) (about 33%),
# up to about 2 hours. The relative error of a percentile read from it is under 15%.
LATENCY_BINS = 48
_FLOOR = 0.01
_STEP = 10 ** (1 / 8)
_LOG_STEP = math.log(_STEP)

# Summed when rows merge; the limits are the last seen, in_flight_max the largest.
COUNTERS = (
    "admitted",
    "succeeded",
    "failed",
    "rate_limited",
    "overloaded",
    "server_errors",
    "other_failures",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost",
    "cost_input",
    "cost_output",
    "cost_cache_write",
    "cost_cache_read",
    "unpriced",
    "samples",
    "waiting_samples",
)
_LIMITS = ("rpm", "itpm", "otpm", "tpm", "concurrency")


def latency_bin(seconds: float) -> int:
    """The histogram bin of a latency."""
    if seconds <= _FLOOR * _STEP:
        return 0
    return min(LATENCY_BINS - 1, int(math.log(seconds / _FLOOR) / _LOG_STEP))


def bin_lower(index: int) -> float:
    """The lower edge of bin `index` in seconds (bin 0 starts at 0)."""
    return 0.0 if index == 0 else _FLOOR * _STEP**index


class Row:
    """The figures of one slot of a segment: counters, the limits at its end, and two latency histograms."""

    __slots__ = (*COUNTERS, *_LIMITS, "binding", "in_flight_max", "latency", "ttft")

    def __init__(self) -> None:
        # Counters (summed when rows merge).
        self.admitted: int = 0
        self.succeeded: int = 0
        self.failed: int = 0
        self.rate_limited: int = 0
        self.overloaded: int = 0
        self.server_errors: int = 0
        self.other_failures: int = 0
        self.input_tokens: int = 0
        self.output_tokens: int = 0
        self.cache_write_tokens: int = 0
        self.cache_read_tokens: int = 0
        self.unpriced: int = 0
        self.samples: int = 0
        self.waiting_samples: int = 0
        self.cost: float = 0.0
        self.cost_input: float = 0.0
        self.cost_output: float = 0.0
        self.cost_cache_write: float = 0.0
        self.cost_cache_read: float = 0.0
        # The limits as learnt, per real minute, at the row's last sample (None: not known).
        self.rpm: float | None = None
        self.itpm: float | None = None
        self.otpm: float | None = None
        self.tpm: float | None = None
        self.concurrency: int | None = None
        self.in_flight_max = 0
        self.binding: Counter[str] = Counter()  # limiter samples by the gate admission waited for
        self.latency: Counter[int] = Counter()  # total seconds of finished successes, by bin
        self.ttft: Counter[int] = Counter()  # seconds to the first answer byte, by bin

    def merge(self, other: Row) -> None:
        """Add `other` (the later row) into this one."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _LIMITS:
            value = getattr(other, name)
            if value is not None:
                setattr(self, name, value)
        self.in_flight_max = max(self.in_flight_max, other.in_flight_max)
        self.binding.update(other.binding)
        self.latency.update(other.latency)
        self.ttft.update(other.ttft)

    def to_json(self) -> str:
        # Ten significant digits: sums of costs would otherwise print seventeen, for nothing a chart can show.
        data: dict[str, object] = {
            n: float(f"{v:.10g}") if isinstance(v, float) else v for n in COUNTERS if (v := getattr(self, n))
        }
        data.update({n: getattr(self, n) for n in _LIMITS if getattr(self, n) is not None})
        if self.in_flight_max:
            data["in_flight_max"] = self.in_flight_max
        for name in ("binding", "latency", "ttft"):
            counts: Counter[object] = getattr(self, name)
            if counts:
                data[name] = {str(k): v for k, v in counts.items()}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Row:
        row = cls()
        data = json.loads(text)
        for name in (*COUNTERS, *_LIMITS, "in_flight_max"):
            if name in data:
                setattr(row, name, data[name])
        row.binding = Counter(data.get("binding", {}))
        row.latency = Counter({int(k): v for k, v in data.get("latency", {}).items()})
        row.ttft = Counter({int(k): v for k, v in data.get("ttft", {}).items()})
        return row


@dataclass(frozen=True)
class Segment:
    """One run of a job as stored: its start (UTC epoch seconds), row width, rows by slot and failure examples."""

    run: int
    started: float
    ended: float
    width: float
    rows: dict[int, Row]
    examples: dict[str, list[str]]

    @property
    def duration(self) -> float:
        return max(self.ended - self.started, (max(self.rows, default=-1) + 1) * self.width if self.rows else 0.0)


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
        prices: PriceTable | None = None,
        row_budget: int = ROW_BUDGET,
    ) -> None:
        self._path = path
        self._now = now
        self._prices = prices or default_table()
        self._budget = row_budget
        self._t0 = now()
        self._started = time.time()
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


def read_segments(conn: sqlite3.Connection) -> list[Segment]:
    """Every recorded run of the job in the store behind `conn`, oldest first (none for a store without any)."""
    try:
        runs = conn.execute("SELECT run, started, ended, width, info FROM timeline_runs ORDER BY run").fetchall()
    except sqlite3.OperationalError:  # a store from before timelines
        return []
    segments = []
    for run, started, ended, width, info in runs:
        rows = {slot: Row.from_json(data) for slot, data in _rows(conn, run)}
        examples = json.loads(info).get("examples", {})
        segments.append(Segment(run, started, ended, width, rows, examples))
    return segments


def _rows(conn: sqlite3.Connection, run: int) -> Iterator[tuple[int, str]]:
    yield from conn.execute("SELECT slot, data FROM timeline WHERE run = ? ORDER BY slot", (run,))
