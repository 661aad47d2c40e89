"""The emulator's own token bucket behaves as the rate-limit docs describe, independently of the client's."""

from __future__ import annotations

import pytest

from sluicegate.emulator.bucket import Bucket, retry_after


def test_refills_continuously_not_at_window_boundaries() -> None:
    """60 per minute refills one token per second, starting full, never above capacity."""
    bucket = Bucket(60, period=60.0, now=0.0)
    bucket.take(60, 0.0)
    assert bucket.level(0.0) == 0.0
    assert bucket.level(1.0) == 1.0
    assert bucket.level(30.0) == 30.0
    assert bucket.level(500.0) == 60.0


def test_wait_time_and_full_in() -> None:
    """wait_time is the seconds until the amount fits; full_in the seconds until fully replenished (reset)."""
    bucket = Bucket(600, period=60.0, now=0.0)  # 10 tokens per second
    bucket.take(590, 0.0)
    assert bucket.wait_time(10, 0.0) == 0.0
    assert bucket.wait_time(30, 0.0) == 2.0
    assert bucket.full_in(0.0) == 59.0


def test_debt_is_paid_back_before_the_next_request() -> None:
    """A late charge drives the level negative; nothing fits until refill has paid it back."""
    bucket = Bucket(60, period=60.0, now=0.0)
    bucket.take(90, 0.0)
    assert bucket.level(0.0) == -30.0
    assert bucket.wait_time(1, 0.0) == 31.0


def test_oversized_request_waits_for_a_full_bucket_only() -> None:
    """An amount above capacity is admitted once the bucket is full, instead of never."""
    bucket = Bucket(100, period=60.0, now=0.0)
    assert bucket.wait_time(1_000, 0.0) == 0.0
    bucket.take(50, 0.0)
    assert bucket.wait_time(1_000, 0.0) == 30.0


def test_refund_never_exceeds_capacity() -> None:
    """An up-front charge refunded in part brings the level back, capped at capacity."""
    bucket = Bucket(100, period=60.0, now=0.0)
    bucket.take(40, 0.0)
    bucket.refund(30, 0.0)
    assert bucket.level(0.0) == 90.0
    bucket.refund(1_000, 0.0)
    assert bucket.level(0.0) == 100.0


@pytest.mark.parametrize(("wait", "expected"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.0000001, 2), (2.5, 3), (59.0, 59)])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, expected: int) -> None:
    """retry-after is an integer that is never earlier than the real wait, and at least one second."""
    assert retry_after(wait) == expected


def test_rejects_empty_buckets() -> None:
    """A zero capacity or period is a configuration error, not a bucket that never fills."""
    with pytest.raises(ValueError, match="positive"):
        Bucket(0, period=60.0, now=0.0)
