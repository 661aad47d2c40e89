"""The pure Message Batches store: schedule, counts that move only at the end, cancel, expiry, pagination."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sluicegate.emulator.batch_store import BatchStore


def _ok(params: Mapping[str, Any]) -> dict[str, Any]:
    if params.get("fail"):
        return {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}},
        }
    return {"type": "succeeded", "message": {"content": params["n"]}}


def _requests(n: int, fail: frozenset[int] = frozenset()) -> list[tuple[str, Mapping[str, Any]]]:
    return [(f"r{i}", {"n": i, "fail": i in fail}) for i in range(n)]


def test_counts_stay_processing_until_the_whole_batch_ends() -> None:
    """request_counts show everything processing mid-way, then the final split once the batch has ended."""
    store = BatchStore(duration=10.0)
    batch = store.create(_requests(4, fail=frozenset({2})), 0.0)
    store.advance(batch, 5.0, _ok)
    assert batch.done == 2
    assert batch.status == "in_progress"
    assert batch.request_counts() == {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    store.advance(batch, 10.0, _ok)
    assert batch.status == "ended"
    assert batch.ended_at == 10.0
    assert batch.request_counts() == {"processing": 0, "succeeded": 3, "errored": 1, "canceled": 0, "expired": 0}
    assert sorted(r["custom_id"] for r in batch.results) == ["r0", "r1", "r2", "r3"]


def test_results_are_shuffled_but_seeded() -> None:
    """Results come in completion order, not request order, and the same seed gives the same order."""
    ids = []
    for _ in range(2):
        store = BatchStore(duration=1.0, seed=7)
        batch = store.create(_requests(20), 0.0)
        store.advance(batch, 1.0, _ok)
        ids.append([r["custom_id"] for r in batch.results])
    assert ids[0] == ids[1]
    assert ids[0] != [f"r{i}" for i in range(20)]


def test_cancel_goes_through_canceling_and_cancels_the_rest() -> None:
    """Cancel shows `canceling`, then ends with the processed part kept and the rest `canceled`."""
    store = BatchStore(duration=10.0, cancel_delay=1.0)
    batch = store.create(_requests(10), 0.0)
    store.advance(batch, 3.0, _ok)
    store.cancel(batch, 3.0)
    assert batch.status == "canceling"
    store.advance(batch, 3.5, _ok)
    assert batch.status == "canceling"
    store.advance(batch, 100.0, _ok)
    assert batch.status == "ended"
    assert batch.ended_at == 4.0
    assert batch.request_counts() == {"processing": 0, "succeeded": 4, "errored": 0, "canceled": 6, "expired": 0}


def test_expiry_marks_unfinished_requests_expired() -> None:
    """A batch that outlives its deadline ends at the deadline with the unfinished part `expired`."""
    store = BatchStore(duration=100.0, deadline=50.0)
    batch = store.create(_requests(4), 0.0)
    store.advance(batch, 1000.0, _ok)
    assert batch.ended_at == 50.0
    assert batch.request_counts() == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 2}
    assert sum(1 for r in batch.results if r["result"] == {"type": "expired"}) == 2


def test_cancel_after_end_changes_nothing() -> None:
    """Canceling an ended batch keeps it ended with its counts."""
    store = BatchStore(duration=1.0)
    batch = store.create(_requests(2), 0.0)
    store.advance(batch, 2.0, _ok)
    store.cancel(batch, 2.0)
    assert batch.status == "ended"
    assert batch.cancel_initiated_at is None


@pytest.mark.parametrize(
    ("kwargs", "expected", "has_more"),
    [
        ({"limit": 2, "before_id": None, "after_id": None}, [4, 3], True),
        ({"limit": 2, "before_id": None, "after_id": 3}, [2, 1], True),
        ({"limit": 2, "before_id": None, "after_id": 1}, [0], False),
        ({"limit": 2, "before_id": 2, "after_id": None}, [4, 3], False),
        ({"limit": 1, "before_id": 2, "after_id": None}, [3], True),
        ({"limit": 10, "before_id": None, "after_id": None}, [4, 3, 2, 1, 0], False),
    ],
)
def test_pagination(kwargs: dict[str, Any], expected: list[int], has_more: bool) -> None:
    """Newest first; after_id pages to older batches, before_id to newer ones; has_more says if more exist."""
    store = BatchStore()
    ids = [store.create(_requests(1), float(i)).id for i in range(5)]
    for key in ("before_id", "after_id"):
        if kwargs[key] is not None:
            kwargs[key] = ids[kwargs[key]]
    page, more = store.page(**kwargs)
    assert [ids.index(b.id) for b in page] == expected
    assert more is has_more


def test_ids_look_real_and_delete_forgets() -> None:
    """Ids have the real prefix and length; a deleted batch is gone."""
    store = BatchStore()
    batch = store.create(_requests(1), 0.0)
    assert batch.id.startswith("msgbatch_01")
    assert len(batch.id) == len("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF")
    store.delete(batch.id)
    assert store.get(batch.id) is None
    assert len(store) == 0
