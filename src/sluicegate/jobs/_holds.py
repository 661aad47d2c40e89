"""Spend holds in the job store: the worst cost of each request in flight, so a kill cannot lift the job's cost cap."""

from __future__ import annotations

from ._db import Database

__all__ = ["SpendHolds"]

# Holds live in `meta` under this prefix (no schema change): one row per request in flight, keyed by its id.
_HOLD, _HOLD_END = "hold:", "hold;"


class SpendHolds:
    """Holds recorded before requests go out, released by their results, and settled as lost spend on the next open.

    A hold still there when the store is next opened belongs to a request that was in flight when a run was
    killed: the server may have charged it, so it counts as spent for good (`lost`).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._active = False  # this run recorded holds (only runs with a cost cap do)

    def hold(self, custom_id: str, worst_cost: float) -> None:
        """Record, durably and before it is sent, that a request may cost up to `worst_cost`; commits."""
        self._active = True
        self._db.write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"{_HOLD}{custom_id}", repr(worst_cost))
        )
        self._db.commit()

    def release(self, custom_id: str) -> None:
        """Drop a request's hold inside the open transaction of the result that replaces it: a kill keeps either
        the hold or the result, never neither."""
        if self._active:
            self._db.write("DELETE FROM meta WHERE key = ?", (f"{_HOLD}{custom_id}",))

    def lost(self) -> float:
        """The worst cost of every request that killed runs left in flight (settled when the store opened)."""
        row = self._db.conn.execute("SELECT value FROM meta WHERE key = 'lost_spend'").fetchone()
        return 0.0 if row is None else float(row[0])

    def settle(self) -> None:
        """Turn the holds an earlier run left behind into lost spend; commits (call once, when the store opens)."""
        conn = self._db.conn
        rows = conn.execute("SELECT value FROM meta WHERE key >= ? AND key < ?", (_HOLD, _HOLD_END)).fetchall()
        if not rows:
            return
        lost = sum(float(value) for (value,) in rows) + self.lost()
        self._db.write("DELETE FROM meta WHERE key >= ? AND key < ?", (_HOLD, _HOLD_END))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('lost_spend', ?)", (repr(lost),))
        self._db.commit()
