"""When the server counts an answer's rate-limit headers: at the request's admission, or as the answer ends.

The API does not say. A reset given as a moment (Anthropic's timestamps) reads differently in the two cases: counted
at admission and read an answer's latency later, the bucket looks that much nearer to full. Until told apart,
`window.py` takes the least favourable moment, which loosens every bound by one latency (a few % of a 60 s minute
with answers of a few seconds, all the same length: nothing narrows it again).

The requests bucket tells them apart. Its `remaining` is exact, and what we took from it, and when, is known. Between
two answers, the change of `remaining` is the refill minus what we took between the two counting moments. When we
took a burst while an answer was in flight (the start's ramp, a queue released at once), the two moments predict
changes several requests apart, and the answer's own count picks one. A vote over such answers decides; until a
clear majority says "at the end", the limiter keeps the least favourable reading. Other clients on the same key,
or a request refused after we counted it, only add noise to the votes, which the majority asks enough of to outvote.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from .._models import BucketView

__all__ = ["CountingMoment"]

_DECISIVE = 6.0  # requests between the two predictions, at the least, for a vote
_NEAR = 0.25  # of that gap (plus a unit for the floored count): the count matches a prediction
_FAR = 0.75  # of that gap: the count refutes a prediction
_FLOOR = 1.0
_RATE_SLACK = 1.25  # the fastest refill allowed for, against the slowest learnt, while nothing bounds it better
_SPAN = 16  # answers back that each one is compared with
_VOTES_KEPT = 32  # recent votes: a server behind a changed gateway is followed
_VOTES_NEEDED = 8  # decisive votes before anything is decided
_MAJORITY = 0.9  # of the kept votes, for "at the end"


class CountingMoment:
    """Votes, from the requests bucket, on whether the server counts headers at admission or at the answer's end."""

    __slots__ = ("_recent", "_votes")

    def __init__(self) -> None:
        # The last answers: (admission, our reading, `remaining`). Each answer is compared with the oldest, so the
        # pair spans a burst: consecutive answers of equal latency differ by a request or two under either moment.
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=_SPAN)
        self._votes: deque[bool] = deque(maxlen=_VOTES_KEPT)  # True: the end predicted the count

    @property
    def at_end(self) -> bool:
        """True once a clear majority of decisive answers were counted as they ended."""
        if len(self._votes) < _VOTES_NEEDED:
            return False
        return sum(self._votes) >= _MAJORITY * len(self._votes)

    def observe(
        self,
        view: BucketView,
        since: float,
        now: float,
        *,
        windows: tuple[float, float],
        taken_by: Callable[[float], float],
    ) -> None:
        """An answer admitted at `since` and read at `now` says `view` of the requests bucket. `windows`: the shortest
        and the longest window the evidence allows (a prediction must hold for every refill in between);
        `taken_by(t)`: what we had taken from the bucket by `t`, its takes at `t` included."""
        oldest = self._recent[0] if self._recent else None
        self._recent.append((since, now, float(view.remaining)))
        slow, fast = _rates(view.limit, *windows)
        if oldest is None or not 0.0 < slow <= fast < math.inf:
            return
        a0, r0, rem0 = oldest
        # A bucket that may have reached full in between lost refill to the cap: neither moment predicts it.
        span = max(abs(since - a0), abs(now - r0), now - a0, abs(r0 - since))
        if max(rem0, view.remaining) + fast * span >= view.limit - 1:
            return
        seen = view.remaining - rem0
        # What each moment predicts for the change, over the refill rates allowed. A burst's requests reach the
        # server a few milliseconds after we take them, not always in the order taken, so a prediction is good to
        # a few requests only: a vote needs the two far apart, the count near one of them and far from the other.
        admission = _predicted(since - a0, taken_by(since) - taken_by(a0), slow, fast)
        end = _predicted(now - r0, taken_by(now) - taken_by(r0), slow, fast)
        apart = max(admission[0], end[0]) - min(admission[1], end[1])
        if apart < _DECISIVE:
            return
        near, far = _NEAR * apart + _FLOOR, _FAR * apart
        if _distance(seen, end) <= near and _distance(seen, admission) >= far:
            self._votes.append(True)
        elif _distance(seen, admission) <= near and _distance(seen, end) >= far:
            self._votes.append(False)


def _rates(limit: float, shortest: float, longest: float) -> tuple[float, float]:
    """The slowest and the fastest refill to allow for, per second: while the fastest the evidence allows is
    unbounded (a bucket reported empty bounds nothing from below), within `_RATE_SLACK` of the slowest."""
    slow = limit / longest
    fast = min(limit / shortest if shortest > 0 else math.inf, slow * _RATE_SLACK)
    return slow, fast


def _predicted(span: float, taken: float, slow: float, fast: float) -> tuple[float, float]:
    """The change of `remaining` over `span` seconds in which `taken` went out, at every rate from slow to fast."""
    return slow * span - taken, fast * span - taken


def _distance(seen: float, predicted: tuple[float, float]) -> float:
    return max(0.0, predicted[0] - seen, seen - predicted[1])
