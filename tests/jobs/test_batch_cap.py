"""The batch route's cost cap: holds at the batch price, kept in the store, replaced by what answers cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.jobs import JobStore
from sluicegate.jobs.batch_cap import BatchCap
from sluicegate.jobs.batch_ledger import BatchLedger
from sluicegate.pricing import Price, PriceTable

from .conftest import SETTINGS, make_item, ok

# $1 per million output tokens at the online price: max_tokens 8 is $0.000004 at the batch price; input is free.
PRICES = PriceTable({"m": Price(input=0.0, output=1.0, cache_write_5m=0.0, cache_write_1h=0.0, cache_read=0.0)})
WORST = 8 / 1e6 * 0.5


def open_store(tmp_path: Path) -> JobStore:
    return JobStore.open(tmp_path / "job.db", settings=SETTINGS)


def test_requests_are_admitted_until_the_next_would_pass_the_cap(tmp_path: Path) -> None:
    """With room for two worst costs, the first two are admitted; the third and every later one are refused."""
    items = [make_item(i) for i in range(4)]
    with open_store(tmp_path) as store:
        cap = BatchCap(store, 2.5 * WORST, PRICES, "anthropic")
        assert [cap.admit(it.custom_id, it.params) for it in items] == [True, True, False, False]
        assert (cap.refused, cap.next_worst) == (2, pytest.approx(WORST))
        assert "2 request(s) not sent" in cap.not_sent()


def test_holds_outlive_the_run_until_answers_replace_them(tmp_path: Path) -> None:
    """Holds written with a batch count after a reopen (a killed run); an answer replaces its hold by its cost, and
    items whose batch was forgotten are held no more."""
    items = [make_item(i) for i in range(3)]
    with open_store(tmp_path) as store:
        for it in items:
            store.admit(it)
        cap = BatchCap(store, 1.0, PRICES, "anthropic")
        for it in items:
            assert cap.admit(it.custom_id, it.params)
        ids = [it.custom_id for it in items]
        cap.hold(ids)
        BatchLedger.of(store).record_intent(ids, 0.0)  # commits the holds with the intent
        BatchLedger.of(store).record_batch("b1", ids[:2])
    with open_store(tmp_path) as store:
        cap = BatchCap(store, 1.0, PRICES, "anthropic")
        assert cap.held() == pytest.approx(2 * WORST)  # the third is in no batch: its create made none
        store.record_result(ok(items[0], cost=0.25))
        store.commit()
        assert cap.held() == pytest.approx(WORST)
        assert cap.committed() == pytest.approx(0.25 + WORST)
        BatchLedger.of(store).forget_batch("b1")
        assert cap.held() == 0.0


def test_a_model_without_a_price_is_not_sent(tmp_path: Path) -> None:
    """Nothing can be held for an unpriced model, so its requests are refused and named, not sent uncounted."""
    item = make_item(0)
    with open_store(tmp_path) as store:
        cap = BatchCap(store, 1.0, PriceTable({}), "anthropic")
        assert not cap.admit(item.custom_id, item.params)
        assert "no price for 'm'" in cap.not_sent()


def test_room_again_once_answers_cost_less_than_their_holds(tmp_path: Path) -> None:
    """After a refusal, the job tries again only when the refused request's worst cost fits beside what is spent."""
    items = [make_item(i) for i in range(2)]
    with open_store(tmp_path) as store:
        store.admit(items[0])
        cap = BatchCap(store, 1.5 * WORST, PRICES, "anthropic")
        assert cap.admit(items[0].custom_id, items[0].params)
        assert not cap.admit(items[1].custom_id, items[1].params)
        cap.hold([items[0].custom_id])
        BatchLedger.of(store).record_batch("b1", [items[0].custom_id])
        assert not cap.room_again()  # still held at its worst
        store.record_result(ok(items[0], cost=WORST / 4))
        store.commit()
        assert cap.room_again()
