"""The job's output log: finished lines in commit order, as the output writers read them (committed rows only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

from .._models import Result
from ._db import Database, EntryKind, ItemState

__all__ = ["OutputLog", "OutputOrder", "result_line"]

OutputOrder = Literal["completion", "input"]

_PENDING, _DUPLICATE = f"{ItemState.PENDING:d}", f"{ItemState.DUPLICATE:d}"


def result_line(result: Result) -> str:
    """The output line of a result: the Batch results format as compact JSON."""
    return json.dumps(result.to_batch_line(), ensure_ascii=False, separators=(",", ":"))


class OutputLog:
    """The `outputs` table and the marks that tie the output file to it.

    The job store appends a line in the same transaction as the state change that points at it (`append`), so both
    are committed or neither. Everything the writers read goes through the store's reader connection: they see
    committed lines only, so the output file never leads the store.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        top = db.conn.execute("SELECT max(seq) FROM outputs").fetchone()[0]
        self._next_seq = 0 if top is None else int(top) + 1

    @property
    def next_seq(self) -> int:
        """The seq the next appended line gets (its entry row points at it)."""
        return self._next_seq

    def append(self, result: Result) -> None:
        """Add a finished line under `next_seq`, inside the caller's open transaction."""
        self._db.conn.execute("INSERT INTO outputs (seq, result) VALUES (?, ?)", (self._next_seq, result_line(result)))
        self._next_seq += 1

    def drop_failed(self) -> None:
        """Remove the lines of failed items, inside the caller's transaction (before their state changes)."""
        self._db.write(
            f"DELETE FROM outputs WHERE seq IN (SELECT seq FROM entries WHERE kind = {EntryKind.ITEM:d}"
            f" AND state = {ItemState.FAILED:d})",
            (),
        )

    def renumber(self) -> None:
        """Lines were dropped: the output file must be regenerated, and positions no longer equal seqs."""
        # The output file still has the dropped lines: a new epoch makes the writer regenerate it.
        self._db.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'")
        self._db.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('holes', '1')")

    def lines(self, order: OutputOrder, start: int = 0) -> Iterator[str]:
        """Committed result lines in output order from position `start`.

        "completion": commit order. "input": input order, only the contiguous prefix of finished lines.
        """
        if order == "completion":
            try:
                first = self.seq_at(start)
            except IndexError:
                return
            rows = self._db.reader.execute("SELECT result FROM outputs WHERE seq >= ? ORDER BY seq", (first,))
            for (text,) in rows:
                yield text
        else:
            for _, text in self.input_rows(self.input_index_after(start)):
                yield text

    def count(self, order: OutputOrder) -> int:
        """How many committed lines the output has in this order."""
        reader = self._db.reader
        if order == "completion":
            # Counted over the small state rows: counting `outputs` would read every result line.
            return int(reader.execute("SELECT count(*) FROM entries WHERE seq IS NOT NULL").fetchone()[0])
        count, top, first_pending = reader.execute(
            f"SELECT count(*), max(idx), min(CASE WHEN state = {_PENDING} THEN idx END) FROM entries"
        ).fetchone()
        if count and top != count - 1:  # a hole in the positions (input changed): walk the prefix
            return sum(1 for _ in self.input_rows(0))
        end = count if first_pending is None else first_pending
        skipped = reader.execute(f"SELECT count(*) FROM entries WHERE state = {_DUPLICATE} AND idx < ?", (end,))
        return int(end - skipped.fetchone()[0])

    def completion_rows(self, after_seq: int) -> Iterator[tuple[int, str]]:
        """Committed (seq, line) pairs with seq > after_seq, in commit order."""
        yield from self._db.reader.execute("SELECT seq, result FROM outputs WHERE seq > ? ORDER BY seq", (after_seq,))

    def input_rows(self, start_idx: int) -> Iterator[tuple[int, str]]:
        """Committed (index, line) pairs from start_idx while the positions are contiguous and finished."""
        expected = start_idx
        for idx, state, text in self._db.reader.execute(
            "SELECT e.idx, e.state, o.result FROM entries AS e LEFT JOIN outputs AS o ON o.seq = e.seq"
            " WHERE e.idx >= ? ORDER BY e.idx",
            (start_idx,),
        ):
            if idx != expected or state == ItemState.PENDING:
                return
            expected += 1
            if state != ItemState.DUPLICATE:
                yield idx, text

    def input_index_after(self, lines: int) -> int:
        """Input order: the position to read from once `lines` output lines are written (duplicates have none)."""
        if lines <= 0:
            return 0
        reader = self._db.reader
        if reader.execute(f"SELECT 1 FROM entries WHERE state = {_DUPLICATE} LIMIT 1").fetchone() is None:
            return lines  # no duplicates: line n is position n
        row = reader.execute(
            f"SELECT idx FROM entries WHERE state != {_DUPLICATE} ORDER BY idx LIMIT 1 OFFSET ?", (lines - 1,)
        ).fetchone()
        return lines if row is None else int(row[0]) + 1

    def outcomes(self, lo: int, hi: int) -> Iterator[tuple[int, int, int, int, float | None, str | None]]:
        """Committed outcomes of positions lo <= idx < hi, in order, for table outputs: (idx, state, input tokens
        with cache, output tokens, cost (None: unpriced), result line (None: pending)); the state is an ItemState."""
        for idx, state, inp, out, cost, unpriced, text in self._db.reader.execute(
            "SELECT e.idx, e.state, e.input_tokens + e.cache_creation_input_tokens + e.cache_read_input_tokens,"
            " e.output_tokens, e.cost, e.unpriced, o.result FROM entries AS e LEFT JOIN outputs AS o ON o.seq = e.seq"
            " WHERE e.idx >= ? AND e.idx < ? ORDER BY e.idx",
            (lo, hi),
        ):
            yield idx, state, inp, out, None if unpriced else float(cost), text

    def seq_at(self, position: int) -> int:
        """The seq of the committed line at a completion-order position (-1 before the first)."""
        if position < 0:
            return -1
        reader = self._db.reader
        if reader.execute("SELECT 1 FROM meta WHERE key = 'holes'").fetchone() is None:
            # Nothing was ever reset, so the seqs are 0, 1, 2, ...: one key lookup instead of a walk over the lines.
            row = reader.execute("SELECT seq FROM outputs WHERE seq = ?", (position,)).fetchone()
        else:
            row = reader.execute("SELECT seq FROM outputs ORDER BY seq LIMIT 1 OFFSET ?", (position,)).fetchone()
        if row is None:
            raise IndexError(position)
        return int(row[0])

    def mark(self) -> str:
        """What the output file must have been regenerated for: the current epoch (bumped by `renumber`)."""
        return str(self._db.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

    def written_mark(self) -> str | None:
        """The mark the output writer recorded after its last full write (None before any)."""
        row = self._db.conn.execute("SELECT value FROM meta WHERE key = 'written'").fetchone()
        return None if row is None else str(row[0])

    def set_written_mark(self, mark: str) -> None:
        """Record (and commit) that the output file now matches this mark."""
        self._db.write("INSERT OR REPLACE INTO meta (key, value) VALUES ('written', ?)", (mark,))
        self._db.commit()
