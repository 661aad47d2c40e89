"""The durable job store: each input line's state (an item or an input problem) and, once finished, its output line."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from .._exceptions import ConfigError, UsageError
from .._models import RequestItem, Result, Usage
from ._db import JobBusyError, JobMismatchError, check_no_secrets, open_database
from .reader import InputProblem, params_fingerprint

__all__ = [
    "AdmitState",
    "BatchIntent",
    "JobBusyError",
    "JobMismatchError",
    "JobStore",
    "OutputOrder",
    "ProblemState",
    "StoreCounts",
]

AdmitState = Literal["new", "pending", "done", "failed", "changed", "duplicate"]
ProblemState = Literal["new", "known", "changed"]
OutputOrder = Literal["completion", "input"]

PENDING, DONE, FAILED, INVALID, DUPLICATE = 0, 1, 2, 3, 4
# A duplicate is a line whose id an earlier line has: stored (so it is counted and reported once) but never output.
_ITEM, _PROBLEM, _DUPLICATE = 0, 1, 2
_STATE_NAMES: dict[int, AdmitState] = {PENDING: "pending", DONE: "done", FAILED: "failed"}
# Outcomes that say "not tried to the end" rather than "this request is bad": the item stays pending so a re-run
# (with a fixed key, a higher cap, after a spend-cap reset) sends it; nothing is written for it.
_NOT_FINAL = frozenset({"aborted", "budget_exceeded", "authentication", "quota_exceeded", "unreachable"})
_PROBLEM_IDS_IN_MEMORY = 100_000
# Spend holds live in `meta` under this prefix (no schema change): one row per request in flight, keyed by its id.
_HOLD, _HOLD_END = "hold:", "hold;"
_READ_AHEAD = 2048  # stored rows read per block when resuming


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Items by state; `total` counts every input line seen (items, invalid and duplicate lines)."""

    total: int
    pending: int
    done: int
    failed: int
    invalid: int
    duplicate: int = 0  # lines skipped because an earlier line has their id (no output line of their own)


@dataclass(frozen=True, slots=True)
class BatchIntent:
    """A create call recorded before it was sent, whose batch id is not recorded (yet)."""

    seq: int
    planned_at: float  # local UTC epoch seconds just before the call
    requests: int
    custom_ids: tuple[str, ...]
    adopted: str | None  # a listed batch taken as this one provisionally, or None


def result_line(result: Result) -> str:
    """The output line of a result: the Batch results format as compact JSON."""
    return json.dumps(result.to_batch_line(), ensure_ascii=False, separators=(",", ":"))


class JobStore:
    """Item states, results and output order for one job, in SQLite (WAL, batched commits).

    Durability: a result is in the output only after its commit; `kill -9` loses at most the uncommitted batch,
    whose items are simply pending again. Output readers use a second connection, so they see committed rows only.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        lock_fd: int | None,
        *,
        commit_every: int,
        commit_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._conn = conn
        self._reader = reader
        self._lock_fd = lock_fd
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._clock = clock
        self._in_txn = False
        self._writes = 0
        self._last_commit = clock()
        self._closed = False
        self._holds = False  # this run recorded holds (only runs with a cost cap do)
        top = conn.execute("SELECT max(seq) FROM outputs").fetchone()[0]
        self._next_seq = 0 if top is None else int(top) + 1
        top_idx = conn.execute("SELECT max(idx) FROM entries").fetchone()[0]
        self._top_at_open = -1 if top_idx is None else int(top_idx)
        # Resume reads the stored rows ahead in position order, a block at a time, instead of one id lookup per line
        # (several times faster over millions of done lines). Safe while admissions come in increasing position
        # order, as a run reads its input: a row ahead of every admission so far cannot have changed since it was
        # read, and each is used once. Any other order switches this off for good (the id lookup is always right).
        self._ahead: dict[int, tuple[int, str | None, int | None, str | None, int]] = {}
        self._ahead_end = 0
        self._last_admitted = -1
        self._read_ahead = True
        # Ids of bad lines, so admission can refuse a later line reusing one. Usually few, so kept in memory (first
        # position per id); past _PROBLEM_IDS_IN_MEMORY they are looked up in the database instead (memory stays
        # bounded, admission gets slower only for inputs that are mostly bad).
        rows = conn.execute(
            "SELECT custom_id, min(idx) FROM entries WHERE kind = 1 GROUP BY custom_id LIMIT ?",
            (_PROBLEM_IDS_IN_MEMORY + 1,),
        ).fetchall()
        self._problem_ids: dict[str, int] | None = dict(rows) if len(rows) <= _PROBLEM_IDS_IN_MEMORY else None
        self._settle_holds()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        settings: Mapping[str, str],
        restart: bool = False,
        commit_every: int = 500,
        commit_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> JobStore:
        """Open (or create) the store at `path` for a job with these settings (never a key).

        An existing store made with other settings raises JobMismatchError naming what changed, unless
        `restart`, which discards everything in it.
        """
        check_no_secrets(settings)
        if commit_every < 1 or commit_interval < 0:
            raise ConfigError("commit_every must be >= 1 and commit_interval >= 0")
        store_path = Path(path)
        conn, reader, lock_fd = open_database(store_path, dict(settings), restart)
        return cls(
            store_path,
            conn,
            reader,
            lock_fd,
            commit_every=commit_every,
            commit_interval=commit_interval,
            clock=clock,
        )

    @property
    def path(self) -> Path:
        return self._path

    # -- admission ---------------------------------------------------------------------------------------------

    def admit(self, item: RequestItem) -> AdmitState:
        """Register an input item and say what to do with it.

        "new" (first time seen) and "pending" (unfinished in an earlier run): send it. "done"/"failed": skip.
        "duplicate": an earlier line of this input has the same id, also a bad line whose id was readable (record an
        InputProblem for this line: nothing is sent for it).
        "changed": this input differs from the one the store was made from (refuse unless restarting).
        """
        fingerprint = params_fingerprint(item.params)
        if item.index <= self._last_admitted:
            self._stop_reading_ahead()
        self._last_admitted = item.index
        if item.index > self._top_at_open:
            # Past everything earlier runs stored (always, in a first run): try the insert first.
            if self._problem_before(item):
                return "duplicate"
            if self._insert(item, fingerprint):
                return "new"
            row = self._find(item.custom_id)
            if row is None:  # the position was taken in this run already: the caller admitted it twice
                return "changed"
        else:
            ahead = self._row_ahead(item.index)
            if ahead is not None and ahead[:3] == (_ITEM, item.custom_id, item.line):
                return _STATE_NAMES[ahead[4]] if ahead[3] == fingerprint else "changed"
            row = self._find(item.custom_id)
            if row is None:
                if self._problem_before(item):
                    return "duplicate"
                # The position is taken by another id or a problem from an earlier run: the input changed there.
                return "new" if self._insert(item, fingerprint) else "changed"
        idx, line, stored_fingerprint, state = row
        if idx == item.index and line == item.line:
            return _STATE_NAMES[state] if stored_fingerprint == fingerprint else "changed"
        # Lines are admitted in input order and the caller stops at the first "changed", so an id first stored at an
        # earlier position was seen at that position in this run too: a true duplicate. A later one means the
        # input moved.
        return "duplicate" if idx < item.index else "changed"

    def _row_ahead(self, index: int) -> tuple[int, str | None, int | None, str | None, int] | None:
        """The stored row at `index` from the read-ahead block (None when not stored or not reading ahead)."""
        if not self._read_ahead:
            return None
        if index >= self._ahead_end:
            end = min(index + _READ_AHEAD, self._top_at_open + 1)
            rows = self._conn.execute(
                "SELECT idx, kind, custom_id, line, fingerprint, state FROM entries WHERE idx >= ? AND idx < ?",
                (index, end),
            ).fetchall()
            self._ahead = {row[0]: row[1:] for row in rows}
            self._ahead_end = end
        return self._ahead.pop(index, None)

    def _stop_reading_ahead(self) -> None:
        self._read_ahead = False
        self._ahead = {}

    def _problem_before(self, item: RequestItem) -> bool:
        """An earlier bad line already carries this id (its errored result is in the output under it)."""
        if self._problem_ids is not None:
            first = self._problem_ids.get(item.custom_id)
            return first is not None and first < item.index
        row = self._conn.execute(
            "SELECT 1 FROM entries WHERE custom_id = ? AND kind = 1 AND idx < ? LIMIT 1", (item.custom_id, item.index)
        ).fetchone()
        return row is not None

    def _find(self, custom_id: str) -> tuple[int, int | None, str, int] | None:
        row: tuple[int, int | None, str, int] | None = self._conn.execute(
            "SELECT idx, line, fingerprint, state FROM entries WHERE custom_id = ? AND kind = 0", (custom_id,)
        ).fetchone()
        return row

    def _insert(self, item: RequestItem, fingerprint: str) -> bool:
        cur = self._write(
            "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, fingerprint, state) VALUES (?, ?, 0, ?, ?, 0)",
            (item.index, item.line, item.custom_id, fingerprint),
        )
        return cur.rowcount == 1

    def record_problem(self, problem: InputProblem) -> ProblemState:
        """Store a bad input line as a final invalid result, under its own position (never over an item).

        "new": recorded now; "known": an earlier run recorded the same problem; "changed": the input differs.
        """
        result = problem.to_result()
        duplicate = problem.duplicate or self._id_taken_before(problem)
        if duplicate:
            cur = self._write(
                "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, state) VALUES (?, ?, 2, ?, 4)",
                (problem.index, problem.line, result.custom_id),
            )
        else:
            cur = self._write(
                "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, state, seq) VALUES (?, ?, 1, ?, 3, ?)",
                (problem.index, problem.line, result.custom_id, self._next_seq),
            )
        if cur.rowcount == 1:
            if not duplicate:
                self._add_output(result)
                self._remember_problem_id(result.custom_id, problem.index)
            return "new"
        row = self._conn.execute("SELECT kind, line, custom_id FROM entries WHERE idx = ?", (problem.index,)).fetchone()
        known = {result.custom_id}
        if problem.custom_id is None:
            known.add(f"line-{problem.line}")  # how stores written before the `line:<n>` fallback named it
        # Stores written before the duplicate rule recorded a duplicate as an invalid line: that is the same line.
        kinds = {_DUPLICATE, _PROBLEM} if duplicate else {_PROBLEM}
        return "known" if row[0] in kinds and row[1] == problem.line and row[2] in known else "changed"

    def _id_taken_before(self, problem: InputProblem) -> bool:
        """A bad line whose readable id an earlier line (an item or another bad line) already has."""
        custom_id = problem.custom_id
        if custom_id is None:
            return False
        row = self._conn.execute(
            "SELECT 1 FROM entries WHERE custom_id = ? AND kind IN (0, 1) AND idx < ? LIMIT 1",
            (custom_id, problem.index),
        ).fetchone()
        return row is not None

    def _remember_problem_id(self, custom_id: str, index: int) -> None:
        ids = self._problem_ids
        if ids is None or index >= ids.get(custom_id, index + 1):
            return
        if len(ids) >= _PROBLEM_IDS_IN_MEMORY:
            self._problem_ids = None  # too many to hold: look them up from now on
        else:
            ids[custom_id] = index

    def admit_problem(self, problem: InputProblem) -> bool:
        """`record_problem` for callers that only count: True when new; JobMismatchError when the input changed."""
        state = self.record_problem(problem)
        if state == "changed":
            raise JobMismatchError(
                f"line {problem.line} differs from the input this job was started with; "
                "start over (restart) to discard the results so far, or use another output file"
            )
        return state == "new"

    # -- spend across runs (the --max-cost cap holds for the job) ----------------------------------------------

    def hold(self, custom_id: str, worst_cost: float) -> None:
        """Record, durably and before it is sent, that a request may cost up to `worst_cost`; commits.

        Its result releases the hold. A hold still there when the store is next opened belongs to a request that
        was in flight when a run was killed: the server may have charged it, so it counts as spent for good.
        """
        self._holds = True
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"{_HOLD}{custom_id}", repr(worst_cost)))
        self.commit()

    def spent(self) -> tuple[float, float]:
        """(cost of every recorded answer, worst cost of requests a killed run left in flight): the job's spend."""
        _, cost, _ = self.totals()
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'lost_spend'").fetchone()
        return cost, 0.0 if row is None else float(row[0])

    def _settle_holds(self) -> None:
        rows = self._conn.execute("SELECT value FROM meta WHERE key >= ? AND key < ?", (_HOLD, _HOLD_END)).fetchall()
        if not rows:
            return
        lost = sum(float(value) for (value,) in rows) + self.spent()[1]
        self._write("DELETE FROM meta WHERE key >= ? AND key < ?", (_HOLD, _HOLD_END))
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lost_spend', ?)", (repr(lost),))
        self.commit()

    # -- results -----------------------------------------------------------------------------------------------

    def record_result(self, result: Result) -> bool:
        """Record a finished item (done or failed). Not-final outcomes (aborted, budget, auth, quota) are ignored.

        Returns True when recorded; False when ignored (not final, or the item already has a result).
        """
        kind = result.error.kind if result.error is not None else ("ok" if result.message is not None else "aborted")
        if self._holds:
            self._release_hold(result.custom_id)
        if kind in _NOT_FINAL:
            return False
        usage = result.usage
        cur = self._write(
            "UPDATE entries SET state = ?, attempts = ?, input_tokens = ?, output_tokens = ?,"
            " cache_creation_input_tokens = ?, cache_read_input_tokens = ?, cache_creation_1h_input_tokens = ?,"
            " cost = ?, unpriced = ?, seq = ? WHERE custom_id = ? AND kind = 0 AND state = 0",
            (
                DONE if kind == "ok" else FAILED,
                result.attempts,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens,
                usage.cache_creation_1h_input_tokens,
                result.cost or 0.0,
                int(result.cost is None),
                self._next_seq,
                result.custom_id,
            ),
        )
        if cur.rowcount == 1:
            self._add_output(result)
            return True
        known = self._conn.execute(
            "SELECT 1 FROM entries WHERE custom_id = ? AND kind = 0", (result.custom_id,)
        ).fetchone()
        if known is None:
            raise UsageError(f"a result for {result.custom_id!r}, which this job store never admitted")
        return False  # a second result for a finished item: the first one stands, so no id is output twice

    def _release_hold(self, custom_id: str) -> None:
        # Same transaction as the result that replaces it: a kill keeps either the hold or the result, never neither.
        self._write("DELETE FROM meta WHERE key = ?", (f"{_HOLD}{custom_id}",))

    def _add_output(self, result: Result) -> None:
        # Same transaction as the state change that points at it, so both are committed or neither.
        self._conn.execute("INSERT INTO outputs (seq, result) VALUES (?, ?)", (self._next_seq, result_line(result)))
        self._next_seq += 1

    # -- transactions ------------------------------------------------------------------------------------------

    def _write(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        """Run one record's first statement inside the open batch (one record counts once toward commit_every)."""
        if self._closed:
            raise UsageError("the job store is closed")
        if not self._in_txn:
            self._conn.execute("BEGIN")
            self._in_txn = True
        self._writes += 1
        return self._conn.execute(sql, args)

    def maybe_commit(self, now: float | None = None) -> bool:
        """Commit when enough records (commit_every) or time (commit_interval) piled up; True if it committed.

        `now` is on the store's clock (time.monotonic unless one was given to `open`); None reads that clock.
        """
        if not self._in_txn:
            return False
        if now is None:
            now = self._clock()
        if self._writes >= self._commit_every or now - self._last_commit >= self._commit_interval:
            self.commit()
            return True
        return False

    def commit(self) -> None:
        """Make everything recorded so far durable (and visible to the output writer)."""
        if self._in_txn:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                # A full disk can make SQLite roll the transaction back: then there is nothing left to commit.
                self._in_txn = self._conn.in_transaction
                raise
            self._in_txn = False
        self._writes = 0
        self._last_commit = self._clock()

    def close(self) -> None:
        """Commit and release the store."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            self._reader.close()
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def __enter__(self) -> JobStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- Message Batches (`sluicegate batch`) ------------------------------------------------------------------

    def in_batch(self, custom_id: str) -> bool:
        """The item was submitted in a Message Batch already (ended or not): never submit it again."""
        row = self._conn.execute("SELECT batch FROM entries WHERE custom_id = ? AND kind = 0", (custom_id,)).fetchone()
        return row is not None and row[0] is not None

    def record_batch(self, batch_id: str, custom_ids: Iterable[str], *, intent: int | None = None) -> None:
        """Record (and commit at once) that a created batch holds these items, so a later run re-attaches to it;
        the intent it fulfils (see `record_intent`) goes in the same transaction."""
        ids = list(custom_ids)
        self._write("INSERT INTO batches (id, items) VALUES (?, ?)", (batch_id, len(ids)))
        self._conn.executemany(
            "UPDATE entries SET batch = ? WHERE custom_id = ? AND kind = 0", [(batch_id, cid) for cid in ids]
        )
        if intent is not None:
            self._conn.execute("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self.commit()

    def record_intent(self, custom_ids: Iterable[str], planned_at: float) -> int:
        """Record (and commit at once) a create call about to be made for these items; returns its key."""
        ids = list(custom_ids)
        cur = self._write(
            "INSERT INTO batch_intents (planned_at, requests, items) VALUES (?, ?, ?)",
            (planned_at, len(ids), json.dumps(ids, separators=(",", ":"))),
        )
        self.commit()
        return int(cur.lastrowid or 0)

    def drop_intent(self, intent: int) -> None:
        """Forget an intent whose create call surely made no batch (refused, or not found on the server); commits."""
        self._write("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self.commit()

    def intents(self) -> list[BatchIntent]:
        """The create calls whose batch id was never recorded, oldest first."""
        rows = self._conn.execute("SELECT seq, planned_at, requests, items, adopted FROM batch_intents ORDER BY seq")
        return [
            BatchIntent(seq=seq, planned_at=at, requests=n, custom_ids=tuple(json.loads(items)), adopted=adopted)
            for seq, at, n, items, adopted in rows
        ]

    def known_batch_ids(self) -> set[str]:
        """Every batch id this job has recorded, adopted or found to be foreign: none can be another intent's."""
        rows = self._conn.execute(
            "SELECT id FROM batches UNION SELECT adopted FROM batch_intents WHERE adopted IS NOT NULL"
            " UNION SELECT id FROM foreign_batches"
        )
        return {row[0] for row in rows}

    def adopt_batch(self, intent: int, batch_id: str, custom_ids: Iterable[str]) -> None:
        """Take a listed batch as the intent's, provisionally: it is polled like any other, but its results are
        stored only once they name exactly the intent's items (`confirm_batch`); commits."""
        ids = list(custom_ids)
        self._write("UPDATE batch_intents SET adopted = ? WHERE seq = ?", (batch_id, intent))
        self._conn.execute("INSERT INTO batches (id, items) VALUES (?, ?)", (batch_id, len(ids)))
        self._conn.executemany(
            "UPDATE entries SET batch = ? WHERE custom_id = ? AND kind = 0", [(batch_id, cid) for cid in ids]
        )
        self.commit()

    def provisional(self, batch_id: str) -> BatchIntent | None:
        """The intent that adopted this batch provisionally, or None (a batch whose create answer was recorded)."""
        return next((intent for intent in self.intents() if intent.adopted == batch_id), None)

    def confirm_batch(self, intent: int) -> None:
        """The adopted batch's results name exactly the intent's items: it is this job's for good; commits."""
        self._write("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self.commit()

    def reject_batch(self, intent: int, batch_id: str) -> None:
        """The adopted batch is another's: forget it (nothing of it was stored), mark it foreign so it is never
        adopted again, and put the intent back to be looked for again; commits."""
        self._write("UPDATE entries SET batch = NULL WHERE batch = ? AND kind = 0", (batch_id,))
        self._conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._conn.execute("INSERT OR IGNORE INTO foreign_batches (id) VALUES (?)", (batch_id,))
        self._conn.execute("UPDATE batch_intents SET adopted = NULL WHERE seq = ?", (intent,))
        self.commit()

    def open_batches(self) -> list[str]:
        """Ids of the recorded batches whose results are not all stored yet, in creation order."""
        return [row[0] for row in self._conn.execute("SELECT id FROM batches WHERE ended = 0 ORDER BY seq")]

    def batch_counts(self) -> tuple[int, int]:
        """(batches recorded, batches ended with their results stored)."""
        row = self._conn.execute("SELECT count(*), total(ended) FROM batches").fetchone()
        return int(row[0]), int(row[1])

    def batch_items(self, batch_id: str) -> dict[str, int]:
        """The still pending items of a batch: custom_id -> input position."""
        rows = self._conn.execute(
            "SELECT custom_id, idx FROM entries WHERE batch = ? AND kind = 0 AND state = 0", (batch_id,)
        )
        return dict(rows.fetchall())

    def end_batch(self, batch_id: str) -> None:
        """Mark a batch ended once all its results are recorded; commits."""
        self._write("UPDATE batches SET ended = 1 WHERE id = ?", (batch_id,))
        self.commit()

    def forget_batch(self, batch_id: str) -> int:
        """Drop a batch the server does not know (the built-in emulator of an earlier run): its unfinished items
        are in no batch again, to be submitted anew; commits. Returns how many."""
        cur = self._write("UPDATE entries SET batch = NULL WHERE batch = ? AND kind = 0 AND state = 0", (batch_id,))
        self._conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self.commit()
        return cur.rowcount

    def release_ended_batches(self) -> int:
        """Pending items of ended batches (reset by --retry-failed) leave them, to be submitted anew; commits."""
        cur = self._write(
            "UPDATE entries SET batch = NULL WHERE kind = 0 AND state = 0 AND batch IN"
            " (SELECT id FROM batches WHERE ended = 1)",
            (),
        )
        self.commit()
        return cur.rowcount

    # -- queries -----------------------------------------------------------------------------------------------

    def reset_failed(self) -> int:
        """Put failed items (not invalid input lines) back to pending, for --retry-failed; commits. Returns how many."""
        self._write("DELETE FROM outputs WHERE seq IN (SELECT seq FROM entries WHERE kind = 0 AND state = 2)", ())
        count = self._conn.execute("UPDATE entries SET state = 0, seq = NULL WHERE kind = 0 AND state = 2").rowcount
        self._ahead, self._ahead_end = {}, 0  # rows read ahead before this may show the old state
        if count:
            # The output file still has their old lines: a new epoch makes the writer regenerate it.
            self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'")
            # Their output seqs are gone: positions in the output no longer equal seqs.
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('holes', '1')")
        self.commit()
        return count

    def counts(self) -> StoreCounts:
        """How many items are in each state (including what this connection has not committed yet)."""
        by_state = dict(self._conn.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall())
        return StoreCounts(
            total=sum(by_state.values()),
            pending=by_state.get(PENDING, 0),
            done=by_state.get(DONE, 0),
            failed=by_state.get(FAILED, 0),
            invalid=by_state.get(INVALID, 0),
            duplicate=by_state.get(DUPLICATE, 0),
        )

    def totals(self) -> tuple[Usage, float, int]:
        """Usage and cost summed over finished items, and how many answers had no price (their cost is unknown,
        so the sum leaves them out)."""
        row = self._conn.execute(
            "SELECT total(input_tokens), total(output_tokens), total(cache_creation_input_tokens),"
            " total(cache_read_input_tokens), total(cache_creation_1h_input_tokens), total(cost), total(unpriced)"
            " FROM entries WHERE state IN (1, 2)"
        ).fetchone()
        usage = Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        return usage, float(row[5]), int(row[6])

    def iter_output(self, order: OutputOrder, start: int = 0) -> Iterator[str]:
        """Committed result lines in output order from position `start`.

        "completion": commit order. "input": input order, only the contiguous prefix of finished lines.
        """
        if order == "completion":
            try:
                first = self.seq_at(start)
            except IndexError:
                return
            rows = self._reader.execute("SELECT result FROM outputs WHERE seq >= ? ORDER BY seq", (first,))
            for (text,) in rows:
                yield text
        else:
            for _, text in self.input_rows(self.input_index_after(start)):
                yield text

    def output_count(self, order: OutputOrder) -> int:
        """How many committed lines the output has in this order."""
        if order == "completion":
            # Counted over the small state rows: counting `outputs` would read every result line.
            return int(self._reader.execute("SELECT count(*) FROM entries WHERE seq IS NOT NULL").fetchone()[0])
        count, top, first_pending = self._reader.execute(
            "SELECT count(*), max(idx), min(CASE WHEN state = 0 THEN idx END) FROM entries"
        ).fetchone()
        if count and top != count - 1:  # a hole in the positions (input changed): walk the prefix
            return sum(1 for _ in self.input_rows(0))
        end = count if first_pending is None else first_pending
        skipped = self._reader.execute("SELECT count(*) FROM entries WHERE state = 4 AND idx < ?", (end,)).fetchone()
        return int(end - skipped[0])

    def completion_rows(self, after_seq: int) -> Iterator[tuple[int, str]]:
        """Committed (seq, line) pairs with seq > after_seq, in commit order."""
        yield from self._reader.execute("SELECT seq, result FROM outputs WHERE seq > ? ORDER BY seq", (after_seq,))

    def input_rows(self, start_idx: int) -> Iterator[tuple[int, str]]:
        """Committed (index, line) pairs from start_idx while the positions are contiguous and finished."""
        expected = start_idx
        for idx, state, text in self._reader.execute(
            "SELECT e.idx, e.state, o.result FROM entries AS e LEFT JOIN outputs AS o ON o.seq = e.seq"
            " WHERE e.idx >= ? ORDER BY e.idx",
            (start_idx,),
        ):
            if idx != expected or state == PENDING:
                return
            expected += 1
            if state != DUPLICATE:
                yield idx, text

    def input_index_after(self, lines: int) -> int:
        """Input order: the position to read from once `lines` output lines are written (duplicates have none)."""
        if lines <= 0:
            return 0
        if self._reader.execute("SELECT 1 FROM entries WHERE state = 4 LIMIT 1").fetchone() is None:
            return lines  # no duplicates: line n is position n
        row = self._reader.execute(
            "SELECT idx FROM entries WHERE state != 4 ORDER BY idx LIMIT 1 OFFSET ?", (lines - 1,)
        ).fetchone()
        return lines if row is None else int(row[0]) + 1

    def outcomes(self, lo: int, hi: int) -> Iterator[tuple[int, int, int, int, float | None, str | None]]:
        """Committed outcomes of positions lo <= idx < hi, in order, for table outputs: (idx, state, input tokens
        with cache, output tokens, cost (None: unpriced), result line (None: pending))."""
        for idx, state, inp, out, cost, unpriced, text in self._reader.execute(
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
        if self._reader.execute("SELECT 1 FROM meta WHERE key = 'holes'").fetchone() is None:
            # Nothing was ever reset, so the seqs are 0, 1, 2, ...: one key lookup instead of a walk over the lines.
            row = self._reader.execute("SELECT seq FROM outputs WHERE seq = ?", (position,)).fetchone()
        else:
            row = self._reader.execute("SELECT seq FROM outputs ORDER BY seq LIMIT 1 OFFSET ?", (position,)).fetchone()
        if row is None:
            raise IndexError(position)
        return int(row[0])

    def output_mark(self) -> str:
        """What the output file must have been regenerated for: the current epoch (bumped by reset_failed)."""
        return str(self._conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

    def written_mark(self) -> str | None:
        """The mark the output writer recorded after its last full write (None before any)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'written'").fetchone()
        return None if row is None else str(row[0])

    def set_written_mark(self, mark: str) -> None:
        """Record (and commit) that the output file now matches this mark."""
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES ('written', ?)", (mark,))
        self.commit()
