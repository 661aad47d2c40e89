"""The job's ledger of submitted batches: which batch holds each item, create intents, adopted and foreign batches.

Only the batch routes (`sluicegate batch`, its deadline fallback) use it; it shares the job store's database and
commit discipline, and every method that records a step of a batch's life commits at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from ._db import Database, EntryKind, ItemState
from .store import JobStore

__all__ = ["BatchIntent", "BatchLedger"]

# The SQL below names kinds and states through these (literals, so SQLite can use the partial indexes).
_ITEM = f"kind = {EntryKind.ITEM:d}"
_PENDING = f"state = {ItemState.PENDING:d}"
_PRIMED = "primed:"  # meta key prefix: a shared prefix's group key -> when its priming batch was submitted


@dataclass(frozen=True, slots=True)
class BatchIntent:
    """A create call recorded before it was sent, whose batch id is not recorded (yet)."""

    seq: int
    planned_at: float  # local UTC epoch seconds just before the call
    requests: int
    custom_ids: tuple[str, ...]
    adopted: str | None  # a listed batch taken as this one provisionally, or None


class BatchLedger:
    """The batches of one job, kept in its store (`batches`, `batch_intents`, `foreign_batches`, `entries.batch`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def of(cls, store: JobStore) -> BatchLedger:
        """The ledger in this job store."""
        return cls(store.db)

    def in_batch(self, custom_id: str) -> bool:
        """The item was submitted in a batch already (ended or not): never submit it again."""
        row = self._db.conn.execute(f"SELECT batch FROM entries WHERE custom_id = ? AND {_ITEM}", (custom_id,))
        found = row.fetchone()
        return found is not None and found[0] is not None

    def record_batch(self, batch_id: str, custom_ids: Iterable[str], *, intent: int | None = None) -> None:
        """Record (and commit at once) that a created batch holds these items, so a later run re-attaches to it;
        the intent it fulfils (see `record_intent`) goes in the same transaction."""
        ids = list(custom_ids)
        self._db.write("INSERT INTO batches (id, items) VALUES (?, ?)", (batch_id, len(ids)))
        self._assign(batch_id, ids)
        if intent is not None:
            self._db.conn.execute("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self._db.commit()

    def _assign(self, batch_id: str, ids: list[str]) -> None:
        self._db.conn.executemany(
            f"UPDATE entries SET batch = ? WHERE custom_id = ? AND {_ITEM}", [(batch_id, cid) for cid in ids]
        )

    def record_intent(self, custom_ids: Iterable[str], planned_at: float) -> int:
        """Record (and commit at once) a create call about to be made for these items; returns its key."""
        ids = list(custom_ids)
        cur = self._db.write(
            "INSERT INTO batch_intents (planned_at, requests, items) VALUES (?, ?, ?)",
            (planned_at, len(ids), json.dumps(ids, separators=(",", ":"))),
        )
        self._db.commit()
        return int(cur.lastrowid or 0)

    def drop_intent(self, intent: int) -> None:
        """Forget an intent whose create call surely made no batch (refused, or not found on the server); commits."""
        self._db.write("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self._db.commit()

    def intents(self) -> list[BatchIntent]:
        """The create calls whose batch id was never recorded, oldest first."""
        rows = self._db.conn.execute("SELECT seq, planned_at, requests, items, adopted FROM batch_intents ORDER BY seq")
        return [
            BatchIntent(seq=seq, planned_at=at, requests=n, custom_ids=tuple(json.loads(items)), adopted=adopted)
            for seq, at, n, items, adopted in rows
        ]

    def known_batch_ids(self) -> set[str]:
        """Every batch id this job has recorded, adopted or found to be foreign: none can be another intent's."""
        rows = self._db.conn.execute(
            "SELECT id FROM batches UNION SELECT adopted FROM batch_intents WHERE adopted IS NOT NULL"
            " UNION SELECT id FROM foreign_batches"
        )
        return {row[0] for row in rows}

    def adopt_batch(self, intent: int, batch_id: str, custom_ids: Iterable[str]) -> None:
        """Take a listed batch as the intent's, provisionally: it is polled like any other, but its results are
        stored only once they name exactly the intent's items (`confirm_batch`); commits."""
        ids = list(custom_ids)
        self._db.write("UPDATE batch_intents SET adopted = ? WHERE seq = ?", (batch_id, intent))
        self._db.conn.execute("INSERT INTO batches (id, items) VALUES (?, ?)", (batch_id, len(ids)))
        self._assign(batch_id, ids)
        self._db.commit()

    def provisional(self, batch_id: str) -> BatchIntent | None:
        """The intent that adopted this batch provisionally, or None (a batch whose create answer was recorded)."""
        return next((intent for intent in self.intents() if intent.adopted == batch_id), None)

    def confirm_batch(self, intent: int) -> None:
        """The adopted batch's results name exactly the intent's items: it is this job's for good; commits."""
        self._db.write("DELETE FROM batch_intents WHERE seq = ?", (intent,))
        self._db.commit()

    def reject_batch(self, intent: int, batch_id: str) -> None:
        """The adopted batch is another's: forget it (nothing of it was stored), mark it foreign so it is never
        adopted again, and put the intent back to be looked for again; commits."""
        self._db.write(f"UPDATE entries SET batch = NULL WHERE batch = ? AND {_ITEM}", (batch_id,))
        self._db.conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._db.conn.execute("INSERT OR IGNORE INTO foreign_batches (id) VALUES (?)", (batch_id,))
        self._db.conn.execute("UPDATE batch_intents SET adopted = NULL WHERE seq = ?", (intent,))
        self._db.commit()

    def open_batches(self) -> list[str]:
        """Ids of the recorded batches whose results are not all stored yet, in creation order."""
        return [row[0] for row in self._db.conn.execute("SELECT id FROM batches WHERE ended = 0 ORDER BY seq")]

    def batch_counts(self) -> tuple[int, int]:
        """(batches recorded, batches ended with their results stored)."""
        row = self._db.conn.execute("SELECT count(*), total(ended) FROM batches").fetchone()
        return int(row[0]), int(row[1])

    def batch_items(self, batch_id: str) -> dict[str, int]:
        """The still pending items of a batch: custom_id -> input position."""
        rows = self._db.conn.execute(
            f"SELECT custom_id, idx FROM entries WHERE batch = ? AND {_ITEM} AND {_PENDING}", (batch_id,)
        )
        return dict(rows.fetchall())

    def end_batch(self, batch_id: str) -> None:
        """Mark a batch ended once all its results are recorded; commits."""
        self._db.write("UPDATE batches SET ended = 1 WHERE id = ?", (batch_id,))
        self._db.commit()

    def forget_batch(self, batch_id: str) -> int:
        """Drop a batch the server does not know (the built-in emulator of an earlier run): its unfinished items
        are in no batch again, to be submitted anew; commits. Returns how many."""
        cur = self._db.write(f"UPDATE entries SET batch = NULL WHERE batch = ? AND {_ITEM} AND {_PENDING}", (batch_id,))
        self._db.conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        self._db.commit()
        return cur.rowcount

    def release_ended_batches(self) -> int:
        """Pending items of ended batches (reset by --retry-failed) leave them, to be submitted anew; commits."""
        cur = self._db.write(
            f"UPDATE entries SET batch = NULL WHERE {_ITEM} AND {_PENDING} AND batch IN"
            " (SELECT id FROM batches WHERE ended = 1)",
            (),
        )
        self._db.commit()
        return cur.rowcount

    def record_primer(self, group: str, submitted_at: float) -> None:
        """A priming batch for this shared prefix was submitted at this wall-clock time (committed at once)."""
        self._db.write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_PRIMED + group, repr(submitted_at)))
        self._db.commit()

    def primed_at(self, group: str) -> float | None:
        """When the last priming batch for this prefix was submitted, or None."""
        row = self._db.conn.execute("SELECT value FROM meta WHERE key = ?", (_PRIMED + group,)).fetchone()
        return None if row is None else float(row[0])
