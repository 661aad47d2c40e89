"""The durable job store: each input line's state (an item or an input problem) and, once finished, its result.

Its parts share one database (`_db.Database`: connections, lock, batched commits): `JobStore` admits lines and
records results; its `output` (an `OutputLog`) is what the output writers read; its `holds` keep the job's cost cap
across kills; the batch routes keep their `BatchLedger` (`batch_ledger.py`) in the same file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from .._exceptions import UsageError
from .._models import RequestItem, Result, Usage
from ._db import Database, EntryKind, ItemState, JobBusyError, JobMismatchError
from ._holds import SpendHolds
from ._lookups import ProblemIds, ReadAhead
from .output_log import OutputLog, OutputOrder, result_line
from .reader import InputProblem, params_fingerprint

__all__ = [
    "AdmitState",
    "ItemState",
    "JobBusyError",
    "JobMismatchError",
    "JobStore",
    "OutputOrder",
    "ProblemState",
    "StoreCounts",
    "result_line",
]

AdmitState = Literal["new", "pending", "done", "failed", "changed", "duplicate"]
ProblemState = Literal["new", "known", "changed"]

_STATE_NAMES: dict[int, AdmitState] = {
    ItemState.PENDING: "pending",
    ItemState.DONE: "done",
    ItemState.FAILED: "failed",
}
# Outcomes that say "not tried to the end" rather than "this request is bad": the item stays pending so a re-run
# (with a fixed key, a higher cap, after a spend-cap reset) sends it; nothing is written for it.
_NOT_FINAL = frozenset({"aborted", "budget_exceeded", "authentication", "quota_exceeded", "unreachable"})
# Kinds and states go into the SQL as literals (`{EntryKind.ITEM:d}`), not parameters: SQLite uses a partial index
# only when the query spells its condition.
_ITEM, _PROBLEM = EntryKind.ITEM, EntryKind.PROBLEM
_PENDING, _DONE, _FAILED = ItemState.PENDING, ItemState.DONE, ItemState.FAILED


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Items by state; `total` counts every input line seen (items, invalid and duplicate lines)."""

    total: int
    pending: int
    done: int
    failed: int
    invalid: int
    duplicate: int = 0  # lines skipped because an earlier line has their id (no output line of their own)


class JobStore:
    """Item states and results of one job, in SQLite (WAL, batched commits).

    Durability: a result is in the output only after its commit; `kill -9` loses at most the uncommitted batch,
    whose items are simply pending again. Output readers use a second connection, so they see committed rows only.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.output = OutputLog(db)
        self.holds = SpendHolds(db)
        conn = db.conn
        top_idx = conn.execute("SELECT max(idx) FROM entries").fetchone()[0]
        self._top_at_open = -1 if top_idx is None else int(top_idx)
        self._ahead = ReadAhead(db, self._top_at_open)
        self._problem_ids = ProblemIds(db)
        self.holds.settle()

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
        db = Database.open(
            Path(path),
            settings,
            restart=restart,
            commit_every=commit_every,
            commit_interval=commit_interval,
            clock=clock,
        )
        try:
            return cls(db)
        except BaseException:
            db.close()
            raise

    @property
    def path(self) -> Path:
        """The store's file."""
        return self.db.path

    # -- admission ---------------------------------------------------------------------------------------------

    def admit(self, item: RequestItem) -> AdmitState:
        """Register an input item and say what to do with it.

        "new" (first time seen) and "pending" (unfinished in an earlier run): send it. "done"/"failed": skip.
        "duplicate": an earlier line of this input has the same id, also a bad line whose id was readable (record an
        InputProblem for this line: nothing is sent for it).
        "changed": this input differs from the one the store was made from (refuse unless restarting).
        """
        fingerprint = params_fingerprint(item.params)
        self._ahead.admitting(item.index)
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
            ahead = self._ahead.row(item.index)
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

    def _problem_before(self, item: RequestItem) -> bool:
        """An earlier bad line already carries this id (its errored result is in the output under it)."""
        return self._problem_ids.before(item.custom_id, item.index)

    def _find(self, custom_id: str) -> tuple[int, int | None, str, int] | None:
        row: tuple[int, int | None, str, int] | None = self.db.conn.execute(
            f"SELECT idx, line, fingerprint, state FROM entries WHERE custom_id = ? AND kind = {_ITEM:d}", (custom_id,)
        ).fetchone()
        return row

    def _insert(self, item: RequestItem, fingerprint: str) -> bool:
        cur = self.db.write(
            "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, fingerprint, state) VALUES (?, ?, ?, ?, ?, ?)",
            (item.index, item.line, _ITEM, item.custom_id, fingerprint, ItemState.PENDING),
        )
        return cur.rowcount == 1

    def record_problem(self, problem: InputProblem) -> ProblemState:
        """Store a bad input line as a final invalid result, under its own position (never over an item).

        "new": recorded now; "known": an earlier run recorded the same problem; "changed": the input differs.
        """
        result = problem.to_result()
        duplicate = problem.duplicate or self._id_taken_before(problem)
        if duplicate:
            cur = self.db.write(
                "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, state) VALUES (?, ?, ?, ?, ?)",
                (problem.index, problem.line, EntryKind.DUPLICATE, result.custom_id, ItemState.DUPLICATE),
            )
        else:
            cur = self.db.write(
                "INSERT OR IGNORE INTO entries (idx, line, kind, custom_id, state, seq) VALUES (?, ?, ?, ?, ?, ?)",
                (problem.index, problem.line, _PROBLEM, result.custom_id, ItemState.INVALID, self.output.next_seq),
            )
        if cur.rowcount == 1:
            if not duplicate:
                self.output.append(result)
                self._problem_ids.remember(result.custom_id, problem.index)
            return "new"
        row = self.db.conn.execute("SELECT kind, line, custom_id FROM entries WHERE idx = ?", (problem.index,))
        kind, line, custom_id = row.fetchone()
        known = {result.custom_id}
        if problem.custom_id is None:
            known.add(f"line-{problem.line}")  # how stores written before the `line:<n>` fallback named it
        # Stores written before the duplicate rule recorded a duplicate as an invalid line: that is the same line.
        kinds = {EntryKind.DUPLICATE, _PROBLEM} if duplicate else {_PROBLEM}
        return "known" if kind in kinds and line == problem.line and custom_id in known else "changed"

    def _id_taken_before(self, problem: InputProblem) -> bool:
        """A bad line whose readable id an earlier line (an item or another bad line) already has."""
        custom_id = problem.custom_id
        if custom_id is None:
            return False
        row = self.db.conn.execute(
            f"SELECT 1 FROM entries WHERE custom_id = ? AND kind IN ({_ITEM:d}, {_PROBLEM:d}) AND idx < ? LIMIT 1",
            (custom_id, problem.index),
        ).fetchone()
        return row is not None

    def admit_problem(self, problem: InputProblem) -> bool:
        """`record_problem` for callers that only count: True when new; JobMismatchError when the input changed."""
        state = self.record_problem(problem)
        if state == "changed":
            raise JobMismatchError(
                f"line {problem.line} differs from the input this job was started with; "
                "start over (restart) to discard the results so far, or use another output file"
            )
        return state == "new"

    def spent(self) -> tuple[float, float]:
        """(cost of every recorded answer, worst cost of requests a killed run left in flight): the job's spend
        against its --max-cost cap, which holds for the job across runs."""
        _, cost, _ = self.totals()
        return cost, self.holds.lost()

    # -- results -----------------------------------------------------------------------------------------------

    def record_result(self, result: Result) -> bool:
        """Record a finished item (done or failed). Not-final outcomes (aborted, budget, auth, quota) are ignored.

        Returns True when recorded; False when ignored (not final, or the item already has a result).
        """
        kind = result.error.kind if result.error is not None else ("ok" if result.message is not None else "aborted")
        self.holds.release(result.custom_id)
        if kind in _NOT_FINAL:
            return False
        usage = result.usage
        cur = self.db.write(
            "UPDATE entries SET state = ?, attempts = ?, input_tokens = ?, output_tokens = ?,"
            " cache_creation_input_tokens = ?, cache_read_input_tokens = ?, cache_creation_1h_input_tokens = ?,"
            f" cost = ?, unpriced = ?, seq = ? WHERE custom_id = ? AND kind = {_ITEM:d} AND state = {_PENDING:d}",
            (
                ItemState.DONE if kind == "ok" else ItemState.FAILED,
                result.attempts,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens,
                usage.cache_creation_1h_input_tokens,
                result.cost or 0.0,
                int(result.cost is None),
                self.output.next_seq,
                result.custom_id,
            ),
        )
        if cur.rowcount == 1:
            self.output.append(result)
            return True
        known = self.db.conn.execute(
            f"SELECT 1 FROM entries WHERE custom_id = ? AND kind = {_ITEM:d}", (result.custom_id,)
        ).fetchone()
        if known is None:
            raise UsageError(f"a result for {result.custom_id!r}, which this job store never admitted")
        return False  # a second result for a finished item: the first one stands, so no id is output twice

    # -- transactions (the shared database's) -------------------------------------------------------------------

    def maybe_commit(self, now: float | None = None) -> bool:
        """Commit when enough records (commit_every) or time (commit_interval) piled up; True if it committed.

        `now` is on the store's clock (time.monotonic unless one was given to `open`); None reads that clock.
        """
        return self.db.maybe_commit(now)

    def commit(self) -> None:
        """Make everything recorded so far durable (and visible to the output writer)."""
        self.db.commit()

    def close(self) -> None:
        """Commit and release the store."""
        self.db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- queries -----------------------------------------------------------------------------------------------

    def reset_failed(self) -> int:
        """Put failed items (not invalid input lines) back to pending, for --retry-failed; commits. Returns how many."""
        self.output.drop_failed()
        count = self.db.conn.execute(
            f"UPDATE entries SET state = {_PENDING:d}, seq = NULL WHERE kind = {_ITEM:d} AND state = {_FAILED:d}"
        ).rowcount
        self._ahead.forget()  # rows read ahead before this may show the old state
        if count:
            self.output.renumber()
        self.commit()
        return count

    def counts(self) -> StoreCounts:
        """How many items are in each state (including what this connection has not committed yet)."""
        by_state = dict(self.db.conn.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall())
        return StoreCounts(
            total=sum(by_state.values()),
            pending=by_state.get(ItemState.PENDING, 0),
            done=by_state.get(ItemState.DONE, 0),
            failed=by_state.get(ItemState.FAILED, 0),
            invalid=by_state.get(ItemState.INVALID, 0),
            duplicate=by_state.get(ItemState.DUPLICATE, 0),
        )

    def totals(self) -> tuple[Usage, float, int]:
        """Usage and cost summed over finished items, and how many answers had no price (their cost is unknown,
        so the sum leaves them out)."""
        row = self.db.conn.execute(
            "SELECT total(input_tokens), total(output_tokens), total(cache_creation_input_tokens),"
            " total(cache_read_input_tokens), total(cache_creation_1h_input_tokens), total(cost), total(unpriced)"
            f" FROM entries WHERE state IN ({_DONE:d}, {_FAILED:d})"
        ).fetchone()
        usage = Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        return usage, float(row[5]), int(row[6])
