"""The stored shape of a run's timeline: per-slot rows with log-spaced latency histograms, and segments (one per
run of a job) read back from the job store. The recorder (`timeline.py`) writes them; the report reads them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["COUNTERS", "LATENCY_BINS", "Row", "Segment", "bin_lower", "latency_bin", "read_segments"]

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
