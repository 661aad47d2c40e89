"""The deadline rule on a fake clock: when a late batch is cancelled so that its rest still ends online in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.jobs.deadline import DeadlinePolicy, OnlinePace, deadline_instant, deadline_setting
from sluicegate.jobs.flex import flex_timeout_for
from sluicegate.jobs.planner import format_duration, parse_duration
from sluicegate.jobs.runner import ExitCode, JobOutcome, open_store
from sluicegate.jobs.store import JobStore

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


def test_a_resumed_job_keeps_the_deadline_instant_of_its_first_run(tmp_path: Path) -> None:
    """The first run stores now + duration; a resume an hour later gets that instant back, not the whole duration."""
    settings = {"input": "in.jsonl", **deadline_setting(6 * 3600.0)}
    with JobStore.open(tmp_path / "job.db", settings=settings) as store:
        assert deadline_instant(store, 1_000.0 + 6 * 3600.0) == 1_000.0 + 6 * 3600.0
    with JobStore.open(tmp_path / "job.db", settings=settings) as store:
        assert deadline_instant(store, 4_600.0 + 6 * 3600.0) == 1_000.0 + 6 * 3600.0


def test_a_resume_with_another_deadline_is_refused_naming_both_and_the_command_that_keeps_the_stored_one(
    tmp_path: Path,
) -> None:
    """`--deadline 6h` then `--deadline 3h` on the same output: refused, and the message says how to keep 6h."""
    out = tmp_path / "out.jsonl"
    first = open_store(out, {"input": "in.jsonl", **deadline_setting(6 * 3600.0)}, False, "")
    assert isinstance(first, JobStore)
    first.close()
    command = "sluicegate batch in.jsonl -o out.jsonl --deadline 3h"
    refused = open_store(out, {"input": "in.jsonl", **deadline_setting(parse_duration("180m"))}, False, command)
    assert isinstance(refused, JobOutcome)
    assert refused.exit_code == ExitCode.USAGE
    assert "--deadline was '6h' in the stored job, now '3h'" in refused.message
    assert "sluicegate batch in.jsonl -o out.jsonl --deadline 6h" in refused.message
    again = open_store(out, {"input": "in.jsonl", **deadline_setting(parse_duration("360m"))}, False, command)
    assert isinstance(again, JobStore)  # 360m is 6h: the same setting
    again.close()


@pytest.mark.parametrize(("text", "canonical"), [("6h", "6h"), ("90m", "1h30m"), ("2d", "2d"), ("45", "45s")])
def test_durations_have_one_canonical_spelling(text: str, canonical: str) -> None:
    """A duration is stored in one spelling, so equal durations are one setting."""
    assert format_duration(parse_duration(text)) == canonical


@pytest.mark.parametrize(
    ("left", "timeout"),
    [(None, 600.0), (6 * 3600.0, 600.0), (600.0, 300.0), (40.0, 20.0), (0.5, 1.0), (-30.0, 1.0)],
)
def test_the_flex_timeout_leaves_half_the_time_left_to_the_standard_tier(left: float | None, timeout: float) -> None:
    """No deadline or a far one: the 600 s ceiling; a near one: half of what is left; past it: 1 s, so the
    standard tier answers at once."""
    assert flex_timeout_for(left, 600.0) == timeout
