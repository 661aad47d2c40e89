"""The job store's SQLite file: schema, states, connections, the one-run lock and the commit discipline."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from enum import IntEnum
from pathlib import Path

from .._exceptions import ConfigError, JobBusyError, JobMismatchError, UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, one run per store is then the user's job
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Database",
    "EntryKind",
    "ItemState",
    "JobBusyError",
    "JobMismatchError",
    "check_no_secrets",
    "open_database",
]


class ItemState(IntEnum):
    """`entries.state`: where an input line stands. Formatted into the SQL (`{ItemState.DONE:d}`), never a bare 2."""

    PENDING = 0  # an item without a final result yet: sent (again) by the next run
    DONE = 1
    FAILED = 2
    INVALID = 3  # a bad input line: its errored result is final
    DUPLICATE = 4  # a line whose id an earlier line has: counted, never output


class EntryKind(IntEnum):
    """`entries.kind`: what a row stands for. Partial indexes name these values, so SQL spells them as literals."""

    ITEM = 0
    PROBLEM = 1  # a bad input line (its id may repeat an item's)
    DUPLICATE = 2  # a line repeating an earlier line's id


SCHEMA_VERSION = "5"
_SECRET_HINTS = ("api_key", "apikey", "secret", "authorization", "password")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,            -- 0-based position among non-blank input lines: one row per line
    line INTEGER,                       -- 1-based physical line
    kind INTEGER NOT NULL,              -- an EntryKind: 0 item, 1 input problem (its id may repeat an item's)
    custom_id TEXT,
    fingerprint TEXT,
    state INTEGER NOT NULL,             -- an ItemState: 0 pending, 1 done, 2 failed, 3 invalid, 4 duplicate
    attempts INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    seq INTEGER,                        -- its line in `outputs` once finished
    cache_creation_1h_input_tokens INTEGER NOT NULL DEFAULT 0,  -- the part of the cache writes with the 1h TTL
    unpriced INTEGER NOT NULL DEFAULT 0 -- 1: an answer whose model had no price (cost unknown, stored as 0)
    , batch TEXT                        -- `sluicegate batch`: the Message Batch holding the item (NULL: none yet)
);
-- The output lines (Batch results format) live apart from the per-line state: scans of the state (counts, the
-- finished prefix, resume checks) then read small rows even when answers are long, an update of the state never
-- moves kilobytes, and completion order is a plain range of this table's key.
CREATE TABLE IF NOT EXISTS outputs (
    seq INTEGER PRIMARY KEY,            -- output sequence: commit (completion) order
    result TEXT NOT NULL
);
-- `sluicegate batch`: the Message Batches submitted for this job, in creation order. A row is written (and committed)
-- right after the create call returns, and `ended` is set once every result line of the batch is committed.
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,            -- creation order
    id TEXT NOT NULL UNIQUE,            -- the API's batch id (msgbatch_...)
    items INTEGER NOT NULL,             -- how many requests it holds (the items are those with entries.batch = id)
    ended INTEGER NOT NULL DEFAULT 0    -- 1: ended and its results are stored
);
-- `sluicegate batch`: a create call about to be made, committed before it is sent. The row is replaced by the
-- batch's row in `batches` once the call's answer is recorded. One still here after a crash is looked for in the
-- account's list of batches on resume (the API has no idempotency key).
CREATE TABLE IF NOT EXISTS batch_intents (
    seq INTEGER PRIMARY KEY,
    planned_at REAL NOT NULL,           -- local UTC epoch seconds just before the create call
    requests INTEGER NOT NULL,          -- how many requests the batch holds
    items TEXT NOT NULL,                -- JSON list of their custom_ids
    adopted TEXT                        -- a listed batch taken as this one, unconfirmed until its results match
);
-- Batches seen in the account's list that are not this job's: a provisional adoption whose results named other ids.
CREATE TABLE IF NOT EXISTS foreign_batches (id TEXT PRIMARY KEY);
"""
# The queries spell these kinds the same way (literals, not parameters), or SQLite would not use the indexes.
_SCHEMA += f"""
CREATE UNIQUE INDEX IF NOT EXISTS entries_item_id ON entries (custom_id) WHERE kind = {EntryKind.ITEM:d};
CREATE INDEX IF NOT EXISTS entries_problem_id ON entries (custom_id) WHERE kind = {EntryKind.PROBLEM:d};
-- `sluicegate report`: the timeline of each run of the job (jobs/timeline.py), one row per slot of `width` seconds.
-- Old stores gain these tables on open (an older version ignores them, so the format number stays).
CREATE TABLE IF NOT EXISTS timeline_runs (
    run INTEGER PRIMARY KEY,            -- runs in start order
    started REAL NOT NULL,              -- UTC epoch seconds at the run's start
    ended REAL NOT NULL,                -- ... at its last write
    width REAL NOT NULL,                -- seconds per row: 1, doubled whenever the rows pass their budget
    info TEXT NOT NULL                  -- JSON: examples of failed attempts by kind
);
CREATE TABLE IF NOT EXISTS timeline (
    run INTEGER NOT NULL,
    slot INTEGER NOT NULL,              -- the row covers [slot * width, (slot + 1) * width) seconds into the run
    data TEXT NOT NULL,                 -- JSON object of the row's figures (zeros left out)
    PRIMARY KEY (run, slot)
) WITHOUT ROWID;
"""

# Append-only: how a store of an older format becomes the current one, step by step (found format -> statements
# that make it the next one). A format with no entry here is refused, and only a restart clears it.
_UPGRADES: dict[str, tuple[str, ...]] = {
    "2": (
        "ALTER TABLE entries ADD COLUMN cache_creation_1h_input_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE entries ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0",
    ),
    # Format 4: `sluicegate batch` records which Message Batch holds each item (the `batches` table itself is
    # created by _SCHEMA, as for a new store).
    "3": ("ALTER TABLE entries ADD COLUMN batch TEXT",),
    # Format 5: create intents and foreign batches (both tables created by _SCHEMA). The number changes so an older
    # version refuses the store instead of ignoring an intent and paying for its batch twice.
    "4": (),
}
# Made after any upgrade, since they index columns an older store only has once upgraded.
_INDEXES = ("CREATE INDEX IF NOT EXISTS entries_batch ON entries (batch) WHERE batch IS NOT NULL",)


class Database:
    """One job store's connections and its commit discipline, shared by the parts of the store (items, output log,
    batch ledger, spend holds): every write goes into one open transaction, committed in batches.

    `conn` writes and reads what this run has not committed yet; `reader` is a second connection that sees committed
    rows only (what the output writer may put in the file).
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
        self.path = path
        self.conn = conn
        self.reader = reader
        self.lock_fd = lock_fd  # the one-run lock, held until close
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._clock = clock
        self._in_txn = False
        self._writes = 0
        self._last_commit = clock()
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        settings: Mapping[str, str],
        *,
        restart: bool,
        commit_every: int,
        commit_interval: float,
        clock: Callable[[], float],
    ) -> Database:
        """Lock and open (or create) the store at `path` for a job with these settings (never a key)."""
        check_no_secrets(settings)
        if commit_every < 1 or commit_interval < 0:
            raise ConfigError("commit_every must be >= 1 and commit_interval >= 0")
        conn, reader, lock_fd = open_database(path, dict(settings), restart)
        return cls(path, conn, reader, lock_fd, commit_every=commit_every, commit_interval=commit_interval, clock=clock)

    def write(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        """Run one record's first statement inside the open batch (one record counts once toward commit_every)."""
        if self._closed:
            raise UsageError("the job store is closed")
        if not self._in_txn:
            self.conn.execute("BEGIN")
            self._in_txn = True
        self._writes += 1
        return self.conn.execute(sql, args)

    def remember(self, key: str, value: str) -> str:
        """The value stored under `key` in meta; the first call stores (and commits) `value`. For what a job keeps
        across its runs, like a deadline's instant."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        self.write("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        self.commit()
        return value

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
        """Make everything recorded so far durable (and visible to the reader)."""
        if self._in_txn:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                # A full disk can make SQLite roll the transaction back: then there is nothing left to commit.
                self._in_txn = self.conn.in_transaction
                raise
            self._in_txn = False
        self._writes = 0
        self._last_commit = self._clock()

    def close(self) -> None:
        """Commit and release the store (the connections and the one-run lock)."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            self.reader.close()
            self.conn.close()
            if self.lock_fd is not None:
                os.close(self.lock_fd)


def open_database(
    path: Path, settings: dict[str, str], restart: bool
) -> tuple[sqlite3.Connection, sqlite3.Connection, int | None]:
    """Lock the store for this run, open it (creating or checking it), and return (writer, reader, lock fd)."""
    try:
        lock_fd = _lock(path)
    except OSError as exc:
        raise ConfigError(f"cannot open the job store {path}: {exc.strerror or exc}") from exc
    try:
        conn = _connect(path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL syncs at checkpoints, not at each commit: a power loss can lose the last commits
            # (those items are pending again) but never corrupts the database; a killed process loses nothing
            # that was committed.
            conn.execute("PRAGMA synchronous = NORMAL")
            _prepare(conn, settings, restart)
            reader = _connect(path)
            reader.execute("PRAGMA query_only = 1")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"{path} is not a usable sluicegate job store ({exc})") from exc
        except BaseException:
            conn.close()
            raise
    except BaseException:
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    return conn, reader, lock_fd


def check_no_secrets(settings: Mapping[str, str]) -> None:
    """Refuse settings that are not strings or look like credentials: the store file must never hold a key."""
    for name, value in settings.items():
        if not isinstance(value, str):
            raise ConfigError(f"job setting {name!r} must be a string")
        lowered = name.lower()
        if any(hint in lowered for hint in _SECRET_HINTS) or value.startswith(("sk-", "Bearer ")):
            raise ConfigError(f"job setting {name!r} looks like a credential; the job store never keeps keys")


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are ours (BEGIN ... COMMIT per batch), not the module's implicit ones.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _lock(path: Path) -> int | None:
    if fcntl is None:
        return None
    # flock on our own descriptor is independent of SQLite's fcntl locks; the descriptor stays open (closing any
    # descriptor of the file would drop SQLite's POSIX locks) until close().
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JobBusyError(f"another run is using the job store {path.name}; wait for it or stop it") from None
    return fd


def _prepare(conn: sqlite3.Connection, settings: dict[str, str], restart: bool) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if restart:
            conn.execute("DROP TABLE IF EXISTS entries")
            conn.execute("DROP TABLE IF EXISTS outputs")
            conn.execute("DROP TABLE IF EXISTS meta")
            conn.execute("DROP TABLE IF EXISTS batches")
            conn.execute("DROP TABLE IF EXISTS batch_intents")
            conn.execute("DROP TABLE IF EXISTS foreign_batches")
            conn.execute("DROP TABLE IF EXISTS timeline_runs")
            conn.execute("DROP TABLE IF EXISTS timeline")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if "settings" in meta:
            _upgrade(conn, meta.get("schema"))
            _compare(json.loads(meta["settings"]), settings)
        else:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("schema", SCHEMA_VERSION), ("settings", json.dumps(settings, sort_keys=True)), ("epoch", "0")],
            )
        for statement in _INDEXES:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _upgrade(conn: sqlite3.Connection, found: str | None) -> None:
    """Bring a store of an older, known format up to this one (inside the caller's transaction)."""
    if found == SCHEMA_VERSION:
        return
    version = found
    while version in _UPGRADES:
        for statement in _UPGRADES[version]:
            conn.execute(statement)
        version = str(int(version) + 1)
    if version != SCHEMA_VERSION:
        _compare_schema(found)  # no way from there to here: refused, as before
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))


def _compare_schema(found: str | None) -> None:
    if found != SCHEMA_VERSION:
        raise JobMismatchError(
            f"the job store has format {found!r}, this version needs {SCHEMA_VERSION!r}; "
            "start over (restart) to discard it"
        )


def _compare(old: Mapping[str, str], new: Mapping[str, str]) -> None:
    changes = {
        key: (old.get(key, ""), new.get(key, "")) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)
    }
    if changes:
        raise JobMismatchError(
            "this job store was made for a different job: "
            + "; ".join(f"{key} was {was!r}, now {now!r}" for key, (was, now) in changes.items())
            + ". Start over (restart) to discard its results, or use another output file",
            changes,
        )
