"""Telling from the requests bucket whether a server counts its headers at admission or as each answer ends."""

from __future__ import annotations

import bisect
import math

import pytest

from sluicegate._models import BucketView
from sluicegate.limits.counting import CountingMoment

_TAKES = [0.01 * k for k in range(40)]  # a burst of 40 requests in 0.4 s, from a bucket of 100 per 100 s


def _taken_by(at: float) -> float:
    return float(bisect.bisect_right(_TAKES, at + 1e-12))


def _level(at: float) -> float:
    """The server's bucket: full (100) at 0, refilled at 1 a second, less what was taken."""
    return min(100.0, 100.0 + at - _taken_by(at))


def _feed(counting: CountingMoment, moment: str, windows: tuple[float, float]) -> None:
    for admitted in _TAKES:
        read = admitted + 2.0  # every answer takes 2 s
        left = math.floor(_level(admitted if moment == "admission" else read))
        counting.observe(
            BucketView(limit=100, remaining=left, reset_in=0.0), admitted, read, windows=windows, taken_by=_taken_by
        )


@pytest.mark.parametrize("moment", ["end", "admission"])
def test_a_burst_in_flight_tells_the_end_from_the_admission(moment: str) -> None:
    """Answers to a burst, each 2 s late: counted at the end, their `remaining` shows the whole burst taken; counted at
    admission, only what was taken before each. The votes say which, and only the end drops the loosening."""
    counting = CountingMoment()
    _feed(counting, moment, (80.0, 100.0))  # refills of 1-1.25 a second
    assert counting.at_end is (moment == "end")


def test_no_vote_while_the_refill_is_unbounded() -> None:
    """With no bound on how fast the bucket refills, no count refutes either moment: nothing is decided."""
    counting = CountingMoment()
    _feed(counting, "end", (0.0, math.inf))
    assert counting.at_end is False


def test_a_bucket_that_may_have_refilled_to_full_casts_no_vote() -> None:
    """A fast refill (50 a second) could have filled the bucket between two counts, losing refill to the cap: no
    prediction holds, so no vote, and the least favourable reading stays."""
    counting = CountingMoment()
    _feed(counting, "end", (100 / 60, 100 / 50))  # refills of 50-60 a second
    assert counting.at_end is False


def test_predictions_a_few_requests_apart_cast_no_vote() -> None:
    """Seen on an emulator counting at admission: 10 requests out in 60 ms before the answer's admission, 7 in the
    21 ms before our reading of it, and the count 5 lower. A burst's requests reach the server in a few ms and not
    always in order, so predictions 2 requests apart (admission 8.6 lower, end 6.5) decide nothing."""
    takes = [0.006 * k for k in range(1, 11)] + [0.3 + 0.003 * k for k in range(1, 8)]

    def taken_by(at: float) -> float:
        return float(bisect.bisect_right(takes, at + 1e-12))

    counting = CountingMoment()
    windows = (120 / 24.2, 120 / 19.4)
    counting.observe(BucketView(limit=120, remaining=81, reset_in=0.0), 0.0, 0.3, windows=windows, taken_by=taken_by)
    counting.observe(BucketView(limit=120, remaining=76, reset_in=0.0), 0.06, 0.321, windows=windows, taken_by=taken_by)
    assert not counting._votes
