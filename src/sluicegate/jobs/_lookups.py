"""Admission's two shortcuts over the job store's entries: rows read ahead on resume, and the ids of bad lines.

Both only make admission faster; each falls back to a plain database lookup, which is always right.
"""

from __future__ import annotations

from ._db import Database, EntryKind

__all__ = ["ProblemIds", "ReadAhead", "StoredRow"]

# kind, custom_id, line, fingerprint, state of a stored entry
StoredRow = tuple[int, str | None, int | None, str | None, int]

_BLOCK = 2048  # stored rows read per block when resuming
_PROBLEM_IDS_IN_MEMORY = 100_000
_PROBLEM = EntryKind.PROBLEM


class ReadAhead:
    """Resume reads the stored rows ahead in position order, a block at a time, instead of one id lookup per line
    (several times faster over millions of done lines).

    Safe while admissions come in increasing position order, as a run reads its input: a row ahead of every
    admission so far cannot have changed since it was read, and each is used once. Any other order switches this
    off for good.
    """

    def __init__(self, db: Database, top: int) -> None:
        self._db = db
        self._top = top  # the last position stored when the store was opened
        self._rows: dict[int, StoredRow] = {}
        self._end = 0
        self._last_admitted = -1
        self._on = True

    def admitting(self, index: int) -> None:
        """Told each admission's position, to notice one out of order."""
        if index <= self._last_admitted:
            self._on = False
            self._rows = {}
        self._last_admitted = index

    def row(self, index: int) -> StoredRow | None:
        """The stored row at `index` (None when not stored, or when no longer reading ahead)."""
        if not self._on:
            return None
        if index >= self._end:
            end = min(index + _BLOCK, self._top + 1)
            rows = self._db.conn.execute(
                "SELECT idx, kind, custom_id, line, fingerprint, state FROM entries WHERE idx >= ? AND idx < ?",
                (index, end),
            ).fetchall()
            self._rows = {row[0]: row[1:] for row in rows}
            self._end = end
        return self._rows.pop(index, None)

    def forget(self) -> None:
        """Drop the rows read so far (the store changed under them); the next row reads a fresh block."""
        self._rows, self._end = {}, 0


class ProblemIds:
    """Ids of bad lines, so admission can refuse a later line reusing one.

    Usually few, so kept in memory (first position per id); past `_PROBLEM_IDS_IN_MEMORY` they are looked up in the
    database instead (memory stays bounded, admission gets slower only for inputs that are mostly bad).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        rows = db.conn.execute(
            f"SELECT custom_id, min(idx) FROM entries WHERE kind = {_PROBLEM:d} GROUP BY custom_id LIMIT ?",
            (_PROBLEM_IDS_IN_MEMORY + 1,),
        ).fetchall()
        self._ids: dict[str, int] | None = dict(rows) if len(rows) <= _PROBLEM_IDS_IN_MEMORY else None

    def before(self, custom_id: str, index: int) -> bool:
        """An earlier bad line (before position `index`) already carries this id."""
        if self._ids is not None:
            first = self._ids.get(custom_id)
            return first is not None and first < index
        row = self._db.conn.execute(
            f"SELECT 1 FROM entries WHERE custom_id = ? AND kind = {_PROBLEM:d} AND idx < ? LIMIT 1",
            (custom_id, index),
        ).fetchone()
        return row is not None

    def remember(self, custom_id: str, index: int) -> None:
        """A bad line was recorded at `index` under this id."""
        ids = self._ids
        if ids is None or index >= ids.get(custom_id, index + 1):
            return
        if len(ids) >= _PROBLEM_IDS_IN_MEMORY:
            self._ids = None  # too many to hold: look them up from now on
        else:
            ids[custom_id] = index
