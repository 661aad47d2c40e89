"""The pure token bucket: refill, debt, waits and resizing, with time passed in."""

import pytest

from sluicegate.limits.bucket import TokenBucket, ceil_seconds


def test_starts_full_and_refills_continuously() -> None:
    """A 60-per-minute bucket refills one token per second, never above capacity."""
    b = TokenBucket(60, now=0.0)
    assert b.try_take(60, 0.0)
    assert b.level(0.0) == 0
    assert b.level(10.0) == 10
    assert b.level(1000.0) == 60


def test_wait_time_and_debt() -> None:
    """A forced take goes into debt; the wait covers the debt plus the amount asked."""
    b = TokenBucket(60, now=0.0, initial=0)
    b.take(30, 0.0)
    assert b.level(0.0) == -30
    assert b.wait_time(1, 0.0) == 31
    assert not b.try_take(1, 30.0)
    assert b.try_take(1, 31.0)


@pytest.mark.parametrize(("amount", "expected"), [(120, 60.0), (60, 60.0), (30, 30.0)])
def test_oversized_amount_waits_only_for_a_full_bucket(amount: int, expected: float) -> None:
    """An amount above capacity is admitted when full instead of waiting forever."""
    b = TokenBucket(60, now=0.0, initial=0)
    assert b.wait_time(amount, 0.0) == expected


def test_refund_resize_and_full_in() -> None:
    """Refunds cap at capacity; resizing keeps the spent part spent; full_in is the reset horizon."""
    b = TokenBucket(60, now=0.0)
    b.take(50, 0.0)
    b.refund(20, 0.0)
    assert b.level(0.0) == 30
    assert b.full_in(0.0) == 30
    b.resize(120, now=0.0)
    assert b.level(0.0) == 90
    b.refund(1000, 0.0)
    assert b.level(0.0) == 120


@pytest.mark.parametrize(("seconds", "expected"), [(0.0, 0), (0.2, 1), (1.0, 1), (1.0000001, 2), (-3.0, 0)])
def test_ceil_seconds(seconds: float, expected: int) -> None:
    """retry-after is a whole number of seconds, never earlier than needed."""
    assert ceil_seconds(seconds) == expected
