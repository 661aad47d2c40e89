"""The output-token mirror under reserved accounting keeps up with the server: refill missed while the window was
still loose is credited once it is learnt, and a `remaining` that dates from a request's admission does not pull
the mirror below what the server has refilled since."""

from __future__ import annotations

import pytest

from sluicegate import RateLimitSnapshot, Usage
from sluicegate._models import BucketView
from sluicegate.limits.gate import Gate
from sluicegate.limits.limiter import Limiter
from sluicegate.testing import FakeClock


def _view(remaining: int, reset_in: float) -> BucketView:
    """Anthropic's output-token headers: remaining rounded to thousands, reset a whole-second timestamp."""
    return BucketView(limit=40_000, remaining=remaining, reset_in=reset_in, remaining_error=500.0, reset_error=1.0)


def test_a_window_learnt_shorter_credits_the_refill_the_mirror_missed() -> None:
    """The first answer bounds the window only loosely (a slow refill); when a later one pins it shorter, the
    mirror holds what the faster refill put back since it was synced, not what the slow guess did."""
    gate = Gate("output_tokens", None, override=None, smooth=False)
    gate.observe(_view(39_000, 0.5), 40_000.0, 0.0, flow=True)
    loose = gate.seconds()
    assert loose > 30.0
    gate.take(30_000.0, 30_000.0, 0.0)
    gate.observe(_view(20_000, 5.0), 40_000.0, 1.0, flow=True, since=0.0, credit=True)
    learnt = gate.seconds()
    assert learnt < 15.0
    mirror = gate.mirror
    assert mirror is not None
    assert mirror.level(1.0) == pytest.approx(38_501.0 - 30_000.0 + 40_000.0 / learnt)


def test_a_window_learnt_from_estimated_charges_credits_nothing() -> None:
    """Input tokens are charged by estimate, so a shorter window learnt from them is not trusted with back refill:
    the mirror keeps what it refilled at the rate in force."""
    gate = Gate("input_tokens", None, override=None, smooth=False)
    gate.observe(_view(39_000, 0.5), 40_000.0, 0.0, flow=True)
    loose = gate.seconds()
    gate.take(30_000.0, 30_000.0, 0.0)
    gate.observe(_view(20_000, 5.0), 40_000.0, 1.0, flow=True, since=0.0)
    mirror = gate.mirror
    assert mirror is not None
    assert mirror.level(1.0) == pytest.approx(38_501.0 - 30_000.0 + 40_000.0 / loose)


@pytest.mark.parametrize(("since", "expected"), [(0.0, 4_501.0), (None, 1_000.0)])
def test_a_remaining_from_admission_does_not_pull_the_mirror_back(since: float | None, expected: float) -> None:
    """A 10 s window, the bucket spent at 0 s: an answer at 1 s whose `remaining` (1,000) was counted at its
    admission leaves the 4,000 tokens refilled since; the same `remaining` known to be current clamps the mirror."""
    gate = Gate("output_tokens", None, override=10.0, smooth=False)
    gate.observe(_view(40_000, 0.0), 40_000.0, 0.0, flow=True)
    gate.take(39_000.0, 39_000.0, 0.0)
    gate.observe(_view(1_000, 9.0), 40_000.0, 1.0, flow=True, since=since)
    mirror = gate.mirror
    assert mirror is not None
    assert mirror.level(1.0) == pytest.approx(expected)


def test_reserved_refunds_return_to_the_bucket_at_settle() -> None:
    """Reserved accounting: max_tokens is held at admission and the unused part is back in the mirror the moment
    the answer settles (not at the next headers), so the requests waiting for it go out at once."""
    clock = FakeClock()

    async def main() -> None:
        limiter = Limiter(clock=clock, minute=10.0, output_accounting="reserved")
        mirror = limiter._gates["output_tokens"]
        probe = await limiter.acquire(10, 1_024)
        bucket = RateLimitSnapshot(output_tokens=_view(39_000, 1.0))  # after the probe's reservation
        limiter.observe(bucket, since=probe.admitted_at)
        held = [await limiter.acquire(10, 1_024) for _ in range(36)]
        assert mirror.mirror is not None
        now = clock.now()
        before = mirror.mirror.level(now)
        for permit in held:
            permit.settle(Usage(input_tokens=10, output_tokens=100))
        assert mirror.mirror.level(now) == pytest.approx(before + 36 * 924)
        assert limiter.statistics().in_flight == 1

    clock.run(main)
