"""The shared limiter's client-side answer to a 429, on a fake clock without Redis: a short-interval limit makes
the named buckets smooth in the whole pool (once), an ordinary 429 is left to the shared pause."""

from __future__ import annotations

from sluicegate._models import BucketView, RateLimitSnapshot
from sluicegate.limits.limiter import Limits
from sluicegate.limits.shared import SharedLimiter
from sluicegate.testing import FakeClock

ROOMY = RateLimitSnapshot(
    requests=BucketView(limit=600, remaining=500, reset_in=10.0),
    input_tokens=BucketView(limit=60_000, remaining=50_000, reset_in=10.0),
)
EMPTY = RateLimitSnapshot(requests=BucketView(limit=600, remaining=0, reset_in=10.0))


def _limiter(clock: FakeClock, **kwargs: object) -> SharedLimiter:
    limits = Limits(requests_per_minute=600, input_tokens_per_minute=60_000)
    return SharedLimiter("redis://127.0.0.1:1/0", name="x", limits=limits, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_a_429_with_room_left_makes_the_named_bucket_smooth_once() -> None:
    """Headers said there was room and the message names requests: SMOOTH for requests only, no pause."""
    clock = FakeClock(100.0)
    limiter = _limiter(clock)
    assert limiter.rate_limited(ROOMY, 10, 10, "Number of requests per minute exceeded", admitted_at=99.0)
    assert [call for call in limiter._outbox if call[0] == "SMOOTH"] == [("SMOOTH", [1.0, "r"])]
    # Another answer for a request sent before the change of pace: already dealt with, no pause.
    assert limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=99.5)
    clock.advance(1.0)
    # Sent after it and refused again: the pool pauses as the server asks.
    assert not limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=100.5)
    assert len([call for call in limiter._outbox if call[0] == "SMOOTH"]) == 1


def test_an_unnamed_short_interval_429_smooths_every_known_bucket() -> None:
    """No bucket named in the message: every bucket with a known limit goes smooth."""
    limiter = _limiter(FakeClock())
    assert limiter.rate_limited(ROOMY, 10, 10, "rate limited")
    assert ("SMOOTH", [1.0, "r", "i"]) in limiter._outbox


def test_an_empty_bucket_or_a_smooth_pool_means_an_ordinary_pause() -> None:
    """remaining 0 (the pool was behind the server), or a pool smooth from the start: False, for cool_down."""
    assert not _limiter(FakeClock()).rate_limited(EMPTY, 1, 1, "requests")
    smooth = _limiter(FakeClock(), smooth=True)
    assert not smooth.rate_limited(ROOMY, 1, 1, "requests")
    assert not [call for call in smooth._outbox if call[0] == "SMOOTH"]
