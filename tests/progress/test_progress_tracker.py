"""ProgressTracker: counts, sliding-window rates, ETA, cost projection, memory bound."""

from __future__ import annotations

import pytest
from progress_helpers import at, failed, ok

from sluicegate._events import (
    AttemptFailed,
    CooldownStarted,
    EventSink,
    LimitsObserved,
    RequestAdmitted,
    RunAborted,
)
from sluicegate._models import BucketView, RateLimitSnapshot, Usage
from sluicegate._stats import EngineStatistics, LimiterStatistics
from sluicegate.pricing import default_table
from sluicegate.progress import ObservedLimits, ProgressTracker
from sluicegate.testing import FakeClock


def _steady(tracker: ProgressTracker, seconds: int, per_second: int, usage: Usage, cost: float = 0.0) -> None:
    """Feed `per_second` completions in the middle of each clock second from 0 to `seconds`."""
    for second in range(seconds):
        for _ in range(per_second):
            tracker(ok(second + 0.5, usage=usage, cost=cost))


def test_counts_by_outcome_and_reason(clock: FakeClock) -> None:
    """Outcomes split into ok, failed by kind, invalid and skipped; attempt failures and retries by reason."""
    tracker = ProgressTracker(clock=clock, total=10)
    sink: EventSink = tracker
    sink(ok(1.0))
    sink(ok(1.0))
    sink(failed(1.0, "server"))
    sink(failed(1.0, "invalid_request", attempts=0))
    sink(failed(1.0, "aborted", attempts=0))
    sink(failed(1.0, "budget_exceeded", attempts=0))
    tracker.skip(2)
    for reason, status, retry in [
        ("rate_limited", 429, True),
        ("rate_limited", 429, True),
        ("overloaded", 529, True),
        ("server", 500, False),
    ]:
        sink(AttemptFailed(at=1.0, index=0, custom_id="a", attempt=1, reason=reason, status=status,
                           will_retry=retry, delay=1.0))  # fmt: skip
    snap = tracker.snapshot()
    assert (snap.done, snap.ok, snap.failed, snap.invalid, snap.skipped, snap.sent) == (8, 2, 1, 1, 4, 3)
    assert dict(snap.failed_by_kind) == {"server": 1, "invalid_request": 1}
    assert dict(snap.attempt_failures) == {"rate_limited": 2, "overloaded": 1, "server": 1}
    assert dict(snap.retries_by_reason) == {"rate_limited": 2, "overloaded": 1}
    assert snap.retries == 3
    assert snap.remaining == 2


def test_windowed_rates_are_exact(clock: FakeClock) -> None:
    """Over a full window the rates are the bucketed counts divided by the seconds the buckets cover."""
    tracker = ProgressTracker(clock=clock, total=2000)
    usage = Usage(input_tokens=100, output_tokens=50, cache_creation_input_tokens=20, cache_read_input_tokens=500)
    _steady(tracker, 60, 10, usage)
    at(clock, 60.0)
    snap = tracker.snapshot()
    # Buckets 31..60 are in the window; it covers 60 - 31 = 29 s holding 29 full seconds of completions.
    assert snap.window == 29.0
    assert snap.completions_per_second == 10.0
    assert snap.input_tokens_per_minute == 72_000.0  # cache reads do not count, cache writes do
    assert snap.output_tokens_per_minute == 30_000.0
    assert snap.usage == Usage(60_000, 30_000, 12_000, 300_000)


def test_rate_during_the_first_seconds_uses_elapsed_time(clock: FakeClock) -> None:
    """Before a whole window has passed, the rate divides by the time since the tracker started."""
    at(clock, 100.0)
    tracker = ProgressTracker(clock=clock)
    tracker(ok(101.0))
    tracker(ok(102.0))
    at(clock, 104.0)
    snap = tracker.snapshot()
    assert snap.window == 4.0
    assert snap.completions_per_second == 0.5
    assert snap.eta is None  # no total


def test_old_completions_fall_out_of_the_window(clock: FakeClock) -> None:
    """Completions older than the window stop counting: the rate decays, then the ETA becomes unknown."""
    tracker = ProgressTracker(clock=clock, total=2000)
    _steady(tracker, 60, 10, Usage())
    at(clock, 75.0)
    assert tracker.snapshot().completions_per_second == 140 / 29  # buckets 46..59 remain
    at(clock, 100.0)
    snap = tracker.snapshot()
    assert snap.completions_per_second == 0.0
    assert snap.eta is None


def test_eta_from_windowed_rate_and_remaining(clock: FakeClock) -> None:
    """ETA is remaining items (total minus earlier and current done) over the windowed rate."""
    tracker = ProgressTracker(clock=clock, total=1000, already_done=100)
    _steady(tracker, 60, 10, Usage())
    at(clock, 60.0)
    snap = tracker.snapshot()
    assert snap.remaining == 300
    assert snap.eta == 30.0


def test_eta_is_zero_when_nothing_remains(clock: FakeClock) -> None:
    """A finished run has ETA 0 whatever the rate."""
    tracker = ProgressTracker(clock=clock, total=3, already_done=1)
    tracker(ok(0.0))
    tracker(ok(0.0))
    assert tracker.snapshot().eta == 0.0


def test_projected_cost(clock: FakeClock) -> None:
    """Projected cost is the average cost per item of this run times the items this run handles."""
    tracker = ProgressTracker(clock=clock, total=10)
    for _ in range(4):
        tracker(ok(0.5, cost=0.25))
    snap = tracker.snapshot()
    assert (snap.cost, snap.projected_cost) == (1.0, 2.5)
    resumed = ProgressTracker(clock=clock, total=10, already_done=2)
    for _ in range(4):
        resumed(ok(0.5, cost=0.25))
    assert resumed.snapshot().projected_cost == 2.0


def test_cost_unknown_without_prices(clock: FakeClock) -> None:
    """With price_known=False both the cost and its projection are None."""
    tracker = ProgressTracker(clock=clock, total=10, price_known=False)
    tracker(ok(0.5, cost=0.0))
    snap = tracker.snapshot()
    assert (snap.cost, snap.projected_cost) == (None, None)


def test_unpriced_answers_are_counted_not_free(clock: FakeClock) -> None:
    """Answers with cost None are counted by model; the cost sums the priced ones and no projection is made."""
    tracker = ProgressTracker(clock=clock, total=10)
    tracker(ok(0.5, cost=0.25))
    tracker(ok(0.5, cost=None, model="acme-1"))
    tracker(ok(0.5, cost=None, model="acme-1"))
    snap = tracker.snapshot()
    assert (snap.cost, snap.projected_cost, dict(snap.unpriced)) == (0.25, None, {"acme-1": 2})
    only_unpriced = ProgressTracker(clock=clock, total=10)
    only_unpriced(ok(0.5, cost=None, model="acme-1"))
    snap = only_unpriced.snapshot()
    assert (snap.cost, snap.projected_cost, dict(snap.unpriced)) == (None, None, {"acme-1": 1})


def test_window_memory_is_bounded(clock: FakeClock) -> None:
    """200k completions spread over 2,000 s leave at most window/resolution buckets in memory."""
    tracker = ProgressTracker(clock=clock, total=200_000)
    for i in range(200_000):
        tracker(ok(i * 0.01, usage=Usage(input_tokens=1)))
    at(clock, 2000.0)
    assert tracker.window_buckets == 30
    snap = tracker.snapshot()
    assert snap.done == 200_000
    assert snap.completions_per_second == 100.0  # 2,900 completions in buckets 1971..1999 over 29 s


def test_limits_cooldown_abort_and_in_flight(clock: FakeClock) -> None:
    """Header limits, the 429 cooldown, the abort reason and in-flight come from their events."""
    tracker = ProgressTracker(clock=clock)
    tracker(LimitsObserved(at=0.0, snapshot=RateLimitSnapshot(input_tokens=BucketView(50_000, 100, 3.0))))
    tracker(LimitsObserved(at=0.0, snapshot=RateLimitSnapshot(requests=BucketView(50, 10, 1.0))))
    tracker(RequestAdmitted(at=0.0, index=0, custom_id="a", attempt=1, input_tokens_estimate=10,
                            output_tokens_reserved=10, in_flight=7))  # fmt: skip
    tracker(CooldownStarted(at=0.0, until=12.5))
    tracker(RunAborted(at=1.0, reason="authentication failed"))
    at(clock, 2.0)
    snap = tracker.snapshot()
    assert snap.observed_limits == ObservedLimits(requests_per_minute=50.0, input_tokens_per_minute=50_000.0)
    assert (snap.in_flight, snap.admitted, snap.cooldown_remaining) == (7, 1, 10.5)
    assert snap.aborted == "authentication failed"
    stats = EngineStatistics(in_flight=3, limiter=LimiterStatistics(cooldown_remaining=20.0))
    with_stats = tracker.snapshot(stats)
    assert (with_stats.in_flight, with_stats.cooldown_remaining) == (3, 20.0)


def test_rejects_a_resolution_wider_than_the_window(clock: FakeClock) -> None:
    """The window must hold at least one bucket of positive width."""
    with pytest.raises(ValueError, match="resolution"):
        ProgressTracker(clock=clock, window=1.0, resolution=2.0)


def test_the_cache_saving_of_a_discounted_answer_is_counted_at_its_own_rate() -> None:
    """A flex or batch answer billed at half price saves half of what the cache saves at the listed price: the
    tier's discount is not reported as the cache's saving."""
    prices = default_table()
    usage = Usage(input_tokens=100, cache_read_input_tokens=9000, output_tokens=50)
    plain = Usage(input_tokens=9100, output_tokens=50)
    listed = prices.cost("claude-sonnet-4-5", usage)
    full = prices.cost("claude-sonnet-4-5", plain)
    assert listed is not None
    assert full is not None
    for rate in (1.0, 0.5):
        clock = FakeClock()
        tracker = ProgressTracker(clock=clock, total=1, uncached_cost=prices.cost)
        tracker(ok(0.1, usage=usage, cost=listed * rate, model="claude-sonnet-4-5"))
        assert tracker.snapshot().cache_saved == pytest.approx((full - listed) * rate)
