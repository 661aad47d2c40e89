"""The deadline rule on a fake clock: when a late batch is cancelled so that its rest still ends online in time."""

from __future__ import annotations

import pytest

from sluicegate.jobs.deadline import DeadlinePolicy, OnlinePace

PACE = OnlinePace(
    requests_per_minute=60.0, input_tokens_per_minute=60_000.0, output_tokens_per_minute=6_000.0, latency=10.0
)


def _policy(deadline_at: float = 3600.0) -> DeadlinePolicy:
    policy = DeadlinePolicy(deadline_at=deadline_at, pace=PACE, cancel_allowance=120.0, safety=1.0)
    for _ in range(100):
        policy.submitted(500, 100)  # 100 items of 500 input and 100 output tokens
    return policy


@pytest.mark.parametrize(
    ("items", "seconds"),
    [
        (0, 0.0),
        (60, 70.0),  # requests bind: 60 per minute -> 60 s, plus the 10 s latency
        (120, 130.0),
    ],
)
def test_online_time_is_the_binding_limit_plus_one_latency(items: int, seconds: float) -> None:
    """Requests (1/s) bind over input (1,000 tokens/s vs 500 each) and output (100 tokens/s vs 100 each)."""
    assert _policy().online_seconds(items) == seconds


def test_output_tokens_can_bind() -> None:
    """With 300 output tokens per item, 10 items take 30 s of output-token budget, more than their 10 s of requests."""
    policy = DeadlinePolicy(deadline_at=100.0, pace=PACE, cancel_allowance=0.0, safety=1.0)
    policy.submitted(10, 300)
    assert policy.online_seconds(10) == 40.0


def test_a_late_batch_is_cancelled_just_in_time_on_a_fake_clock() -> None:
    """Polling every 30 s a batch that never ends, sleeping as the runner does: the cancel comes exactly at
    deadline - allowance - online time, so the cancel's allowance plus the online rest end exactly at the deadline."""
    policy = _policy()
    unfinished = 100  # the batch finishes nothing
    now = 0.0
    polls = 0
    while not policy.should_cancel(now, unfinished):
        now += policy.next_poll(now, unfinished, 30.0)
        polls += 1
    assert now == 3600.0 - 120.0 - 110.0  # 100 items online: 100 s of requests plus 10 s latency
    assert polls == 113  # 112 full intervals to 3,360 s, then one cut to 10 s
    assert now + 120.0 + policy.online_seconds(unfinished) == 3600.0
    assert not policy.should_cancel(now, 0)  # nothing left: nothing to cancel


def test_fewer_unfinished_items_let_the_batch_run_longer() -> None:
    """As the batch finishes items, the latest cancel moment moves toward the deadline."""
    policy = _policy()
    assert policy.cancel_at(100) < policy.cancel_at(50) < policy.cancel_at(1) < 3600.0
