"""Batch ledger: which batch holds each item, ended batches, and items released for a retry."""

from __future__ import annotations

from pathlib import Path

from sluicegate.jobs import JobStore
from sluicegate.jobs.batch_ledger import BatchLedger

from .conftest import SETTINGS, failed, make_item, ok


def open_store(tmp_path: Path) -> JobStore:
    """A store in tmp_path with the standard settings."""
    return JobStore.open(tmp_path / "job.db", settings=SETTINGS)


def test_batches_are_recorded_ended_and_released_for_a_retry(tmp_path: Path) -> None:
    """A recorded batch survives a reopen; once ended, its failed items reset by retry leave it to be resubmitted."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        BatchLedger.of(store).record_batch("msgbatch_a", [it.custom_id for it in items])
    with open_store(tmp_path) as store:
        ledger = BatchLedger.of(store)
        assert ledger.open_batches() == ["msgbatch_a"]
        store.record_result(ok(items[0]))
        store.record_result(failed(items[1]))
        store.record_result(failed(items[2]))
        store.commit()
        assert ledger.batch_items("msgbatch_a") == {}
        ledger.end_batch("msgbatch_a")
        assert (ledger.open_batches(), ledger.batch_counts()) == ([], (1, 1))
        assert ledger.release_ended_batches() == 0  # failed items keep their batch until reset
        assert store.reset_failed() == 2
        assert ledger.release_ended_batches() == 2
        assert [ledger.in_batch(it.custom_id) for it in items] == [True, False, False]
