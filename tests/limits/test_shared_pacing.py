"""The shared limiter's client-side answer to a 429, on a fake clock without Redis: a short-interval limit makes
the named buckets smooth in the whole pool (once), an ordinary 429 is left to the shared pause; and the search of
a smooth bucket's pace (probe upwards, step back), sent to the pool as PACE steps."""

from __future__ import annotations

from sluicegate._models import BucketView, RateLimitSnapshot
from sluicegate.limits._pool import PoolView
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
    assert [call for call in limiter._outbox if call[0] == "SMOOTH"] == [("SMOOTH", [0.05, "r"])]
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
    assert ("SMOOTH", [0.05, "r", "i"]) in limiter._outbox


def test_an_empty_bucket_or_a_smooth_pool_means_an_ordinary_pause() -> None:
    """remaining 0 (the pool was behind the server), or a pool smooth from the start: False, for cool_down."""
    assert not _limiter(FakeClock()).rate_limited(EMPTY, 1, 1, "requests")
    smooth = _limiter(FakeClock(), smooth=True)
    assert not smooth.rate_limited(ROOMY, 1, 1, "requests")
    assert not [call for call in smooth._outbox if call[0] == "SMOOTH"]


def _paced(clock: FakeClock, rate: float = 10.0, **pool: object) -> SharedLimiter:
    """A pool whose requests bucket is smooth at a learnt `rate` a second (as a heartbeat would have said)."""
    limiter = _limiter(clock)
    limiter._pool = PoolView(
        limits=(600.0, 60_000.0, None, None),
        rates=(rate, 1_000.0, None, None),
        smooth=(True, False, False, False),
        **pool,  # type: ignore[arg-type]
    )
    return limiter


def _paces(limiter: SharedLimiter) -> list[list[object]]:
    return [args for name, args in limiter._outbox if name == "PACE"]


def _held_second(limiter: SharedLimiter, clock: FakeClock, snapshot: RateLimitSnapshot = ROOMY) -> None:
    """Eleven responses over 1.1 s, each after an admission the pool's pace held back; `remaining` unchanged."""
    for _ in range(11):
        limiter._note_admission(10, 10, 0.05, b"r")
        limiter.observe(snapshot)
        clock.advance(0.11)


def test_a_pace_that_held_requests_back_a_second_without_draining_the_bucket_is_doubled_in_the_pool() -> None:
    """The search of `pace.py`, run on the pool's pace: good at 10/s, the step to 20/s sent as a PACE from 10."""
    clock = FakeClock(100.0)
    limiter = _paced(clock)
    _held_second(limiter, clock)
    assert _paces(limiter) == [[0.05, "r", 0, 20.0, 10.0, "", "0"]]


def test_no_probe_while_the_pace_held_nothing_back_or_the_bucket_drained() -> None:
    """Admitted at once (nothing held back), or `remaining` falling: the pace proved nothing, no step."""
    clock = FakeClock(100.0)
    limiter = _paced(clock)
    for _ in range(11):
        limiter._note_admission(10, 10, 0.0, b"r")
        limiter.observe(ROOMY)
        clock.advance(0.11)
    draining = _paced(clock)
    for k in range(11):
        draining._note_admission(10, 10, 0.05, b"r")
        draining.observe(RateLimitSnapshot(requests=BucketView(limit=600, remaining=500 - 10 * k, reset_in=10.0)))
        clock.advance(0.11)
    assert _paces(limiter) == []
    assert _paces(draining) == []


def _admitted_in(limiter: SharedLimiter, clock: FakeClock, epoch: int) -> None:
    """The pool took a step: an admission now, whose RESERVE answered `epoch`."""
    limiter._epoch = max(limiter._epoch, epoch)
    limiter._epochs.append((clock.now(), epoch))


def test_a_refusal_above_the_learnt_rate_steps_the_pool_back_once_without_a_pause() -> None:
    """Refused at the probed 20/s (headers said there was room): back to the good 10/s, in the pool; another
    refusal of a request reserved at 20/s is of the pace just left (no second step); at the learnt rate a refusal
    means a pause."""
    clock = FakeClock(100.0)
    limiter = _paced(clock)
    _held_second(limiter, clock)
    _admitted_in(limiter, clock, 1)  # the pool took the probe to 20/s
    assert limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=clock.now())
    assert _paces(limiter)[-1] == [0.05, "r", 1, 10.0, 10.0, 20.0, "1"]
    assert limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=clock.now())
    clock.advance(0.5)
    _admitted_in(limiter, clock, 2)  # ... and the step back
    assert not limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=clock.now())
    assert len(_paces(limiter)) == 2


def test_an_empty_bucket_at_a_pace_above_the_refill_steps_back_and_pauses() -> None:
    """remaining 0 while paced above the learnt rate: the pace outran the server's refill; a step back and the
    pause the server asks for (False)."""
    clock = FakeClock(100.0)
    limiter = _paced(clock)
    _held_second(limiter, clock)
    assert not limiter.rate_limited(EMPTY, 1, 1, "requests per minute", admitted_at=clock.now() - 0.01)
    assert _paces(limiter)[-1][-1] == "1"


def test_the_heartbeat_brings_the_pace_another_process_found() -> None:
    """Another process probed the pool to 30/s: this one steps back from there, not from its own 10/s."""
    clock = FakeClock(100.0)
    limiter = _paced(clock, paces=((30.0, 20.0, None, None), *((None,) * 4,) * 3), epoch=4)
    limiter._adopt_paces()
    limiter._epochs.append((clock.now(), 4))
    assert limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=clock.now())
    assert _paces(limiter) == [[0.05, "r", 4, 20.0, 20.0, 30.0, "1"]]


def test_the_probe_stops_at_the_fastest_refill_the_pool_s_resets_allow() -> None:
    """The pool's shortest window (40 s for 600 requests: 15/s) bounds the search: half way to it, then within a
    fifth of it, where the probing stops."""
    clock = FakeClock(100.0)
    limiter = _paced(clock, paces=((None, None, None, 40.0), *((None,) * 4,) * 3))
    _held_second(limiter, clock)
    _held_second(limiter, clock)
    _held_second(limiter, clock)
    assert _paces(limiter) == [[0.05, "r", 0, 12.5, 10.0, "", "0"]]


def test_a_refusal_of_a_request_admitted_before_the_pool_s_last_change_of_pace_is_not_a_step() -> None:
    """Admitted in epoch 2, refused after another process's step made it epoch 3: already dealt with (no pause),
    and this process's search is left as the pool's."""
    clock = FakeClock(100.0)
    limiter = _paced(clock, paces=((20.0, 10.0, None, None), *((None,) * 4,) * 3), epoch=2)
    limiter._adopt_paces()
    limiter._epochs.append((clock.now(), 2))
    clock.advance(0.1)
    limiter._pool = PoolView(
        limits=(600.0, 60_000.0, None, None),
        rates=(10.0, 1_000.0, None, None),
        smooth=(True, False, False, False),
        paces=((15.0, 10.0, 20.0, None), *((None,) * 4,) * 3),
        epoch=3,
    )
    limiter._adopt_paces()
    assert limiter.rate_limited(ROOMY, 10, 10, "requests per minute", admitted_at=100.0)
    assert _paces(limiter) == []
    assert limiter._searches[0].rate(10.0) == 15.0
