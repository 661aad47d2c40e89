"""What a report shows, read from a job store (read-only): the runs' timelines, totals, and errors with examples."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import ConfigError
from ..jobs.store import ItemState
from ..jobs.timeline_rows import Row, Segment, read_segments

__all__ = ["ErrorGroup", "Point", "ReportData", "load"]

_EXAMPLES = 3
# States as SQL literals: answered (done or failed), and final errors (failed items and bad input lines).
_ANSWERED = f"({ItemState.DONE:d}, {ItemState.FAILED:d})"
_ERRORS = f"({ItemState.FAILED:d}, {ItemState.INVALID:d})"


@dataclass(frozen=True)
class Point:
    """One timeline row placed on the report's time axis (seconds of work, the gaps between runs left out)."""

    x: float
    width: float
    run: int  # 1-based position of its run
    row: Row


@dataclass(frozen=True)
class ErrorGroup:
    """Final errors of one kind: how many, and a few examples (line, id, message)."""

    kind: str
    count: int
    examples: list[tuple[int | None, str, str]]


@dataclass(frozen=True)
class ReportData:
    """Everything the report draws, from one job store."""

    store: Path
    settings: dict[str, str]
    counts: dict[str, int]  # pending, done, failed, invalid
    tokens: dict[str, int]  # input, output, cache_write, cache_read
    cost: float
    unpriced: int
    batch_items: int
    batch_cost: float
    errors: list[ErrorGroup]
    segments: list[Segment]
    points: list[Point]
    run_starts: list[float]  # x where each run begins
    attempt_examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.counts["done"] + self.counts["failed"]


def load(store: Path) -> ReportData:
    """Read the job store at `store`; a ConfigError says why it cannot be read."""
    if not store.exists():
        raise ConfigError(f"no job store at {store}: run the job first (sluicegate run ... -o OUTPUT)")
    try:
        conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the job store {store}: {exc}") from exc
    try:
        return _load(store, conn)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{store} is not a readable sluicegate job store ({exc})") from exc
    finally:
        conn.close()


def _load(store: Path, conn: sqlite3.Connection) -> ReportData:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    settings = json.loads(meta.get("settings", "{}"))
    by_state = dict(conn.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall())
    states = (ItemState.PENDING, ItemState.DONE, ItemState.FAILED, ItemState.INVALID)
    counts = {state.name.lower(): by_state.get(state, 0) for state in states}
    row = conn.execute(
        "SELECT total(input_tokens), total(output_tokens), total(cache_creation_input_tokens),"
        " total(cache_read_input_tokens), total(cost), total(unpriced),"
        f" total(batch IS NOT NULL AND state IN {_ANSWERED}), total(CASE WHEN batch IS NOT NULL THEN cost END)"
        f" FROM entries WHERE state IN {_ANSWERED}"
    ).fetchone()
    tokens = dict(zip(("input", "output", "cache_write", "cache_read"), map(int, row[:4]), strict=True))
    segments = read_segments(conn)
    points: list[Point] = []
    run_starts: list[float] = []
    examples: dict[str, list[str]] = {}
    offset = 0.0
    for number, segment in enumerate(segments, start=1):
        run_starts.append(offset)
        for slot, values in sorted(segment.rows.items()):
            points.append(Point(offset + slot * segment.width, segment.width, number, values))
        offset += segment.duration
        for kind, messages in segment.examples.items():
            kept = examples.setdefault(kind, [])
            kept.extend(messages[: _EXAMPLES - len(kept)])
    return ReportData(
        store=store,
        settings=settings,
        counts=counts,
        tokens=tokens,
        cost=float(row[4]),
        unpriced=int(row[5]),
        batch_items=int(row[6]),
        batch_cost=float(row[7]),
        errors=_errors(conn),
        segments=segments,
        points=points,
        run_starts=run_starts,
        attempt_examples=examples,
    )


def _errors(conn: sqlite3.Connection) -> list[ErrorGroup]:
    """Final errors (failed items and bad input lines) by the API's error type, most common first."""
    kind = "coalesce(json_extract(o.result, '$.result.error.error.type'), 'unknown')"
    groups = conn.execute(
        f"SELECT {kind} AS k, count(*) FROM entries AS e JOIN outputs AS o ON o.seq = e.seq"
        f" WHERE e.state IN {_ERRORS} GROUP BY k ORDER BY count(*) DESC, k"
    ).fetchall()
    out = []
    for name, count in groups:
        rows = conn.execute(
            f"SELECT e.line, coalesce(e.custom_id, ''), json_extract(o.result, '$.result.error.error.message')"
            f" FROM entries AS e JOIN outputs AS o ON o.seq = e.seq WHERE e.state IN {_ERRORS} AND {kind} = ?"
            " ORDER BY e.idx LIMIT ?",
            (name, _EXAMPLES),
        ).fetchall()
        out.append(ErrorGroup(str(name), int(count), [(line, cid, str(msg or "")[:300]) for line, cid, msg in rows]))
    return out
