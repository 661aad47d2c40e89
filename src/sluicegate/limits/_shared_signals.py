"""What the server tells the shared limiter, shared with the pool: headers, 429s, overload, the first response.

A base of `SharedLimiter` (`shared.py`) over its link to Redis (`_shared_link.py`), split out so each module
stays readable; it owns no state of its own. What the headers say goes to the pool through the outbox; a 429
while the headers said every bucket had room makes the named buckets smooth in the whole pool. While Redis is
lost, the local fallback answers, on its 1/N of the limits.

A smooth bucket's pace is searched as the in-process limiter's is (`pace.py`): each process runs the search on
what its own responses say and sends a step to the pool (`PACE`) with the pool's pace epoch it was decided in
(RESERVE answers the epoch with each admission); the pool takes a step only in that epoch, so a refusal of a
request reserved before another process's step is not a step of its own. The heartbeat brings every process the
pool's pace search, which is the truth.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

from .._models import BucketView, RateLimitSnapshot
from .._stats import Binding
from ._fallback import scaled
from ._limiter_signals import _GATE_WORDS
from ._shared_link import PoolLink
from .limiter import Limiter, Limits
from .pace import PaceSearch

_DIMS: tuple[Binding, ...] = ("requests", "input_tokens", "output_tokens", "tokens")
_BINDINGS: dict[str, Binding] = {"r": "requests", "i": "input_tokens", "o": "output_tokens", "t": "tokens"}
_CODES = {binding: code for code, binding in _BINDINGS.items()}


class SharedSignals(PoolLink):
    """The `SharedLimiter`'s reactions to responses; the attributes are set by its `__init__`."""

    _given: Limits
    _burst: float
    _smooth: bool
    _seen_limits: list[float | None]
    _smoothed: set[int]
    _smooth_since: float
    _first_admitted: float | None
    _searches: list[PaceSearch]
    _held: list[bool]
    _units: list[float]
    _epoch: int
    _stepped: int
    _epochs: deque[tuple[float, int]]

    def _known_limits(self) -> list[float | None]:
        raise NotImplementedError

    def observe(self, snapshot: RateLimitSnapshot, now: float | None = None, *, since: float | None = None) -> None:
        """Send the limits, learnt windows and `remaining` of a response's headers to the pool (the stricter of
        given and seen limits). `since` (when the answered request was admitted) gives the round trip the ramp
        starts from; the pool only ever pulls its level down, so it needs no staleness bound."""
        self._seen = True
        if self._local is not None:
            self._local.observe(scaled(snapshot, self._divisor()), now, since=since)
        views: list[BucketView | None] = [snapshot.requests, snapshot.input_tokens, snapshot.output_tokens, None]
        # Anthropic's combined "tokens" is input + output when both are reported: enforcing it adds nothing.
        if snapshot.input_tokens is None and snapshot.output_tokens is None:
            views[3] = snapshot.tokens
        now = self._clock.now() if now is None else now
        # The ramp starts from the round trip to these headers (the pool ignores it once its ramp has begun).
        started = since if since is not None else self._first_admitted
        stale = 0.0 if since is None else max(0.0, now - since)
        args = self._observe_args(views, None if started is None else now - started, stale)
        self._last_observe = args
        self._send("OBSERVE", args)
        self._probe(views, now)
        self._notify()

    def _paced(self, k: int) -> bool:
        """Whether dimension k is paced smoothly in the pool (as far as this process knows)."""
        return self._smooth or k in self._smoothed or self._pool.smooth[k]

    def _probe(self, views: list[BucketView | None], now: float) -> None:
        """After a second in which the pool's pace held this process's requests back while what the server says is
        left did not fall, try a faster pace (`PaceSearch.probe`)."""
        known = self._known_limits()
        for k, view in enumerate(views):
            held, self._held[k] = self._held[k], False
            learnt, limit = self._pool.rates[k], known[k]
            if view is None or view.limit <= 0 or not learnt or limit is None or not self._paced(k):
                continue
            search = self._searches[k]
            scale = limit / view.limit
            moved = search.probe(
                learnt,
                now,
                held=held,
                remaining=view.remaining * scale,
                slack=(view.remaining_error + 1.0) * scale,
                fastest=self._fastest(k),
                unit=self._units[k],
            )
            if moved:
                self._send_pace(k, self._epoch, refusal=False)

    def _fastest(self, k: int) -> float:
        """The fastest refill the evidence allows, tokens per second: the user's window if given, else the
        shortest window the pool's reset headers allow (unbounded while they bound nothing)."""
        limit = self._known_limits()[k]
        shortest = self._minute if self._minute is not None else self._pool.paces[k][3]
        return limit / shortest if limit is not None and shortest else math.inf

    def _send_pace(self, k: int, epoch: int, *, refusal: bool) -> None:
        search = self._searches[k]
        refused = "" if search.refused == math.inf else search.refused
        step = [_CODES[_DIMS[k]], epoch, search.target, search.good, refused, "1" if refusal else "0"]
        self._send("PACE", [self._burst, *step])

    def _adopt_paces(self) -> None:
        """The heartbeat's view of the pool's paces, which is the truth: another process may have stepped since,
        and a step of ours the pool did not take (decided in an epoch already over) is undone here."""
        self._epoch = max(self._epoch, self._pool.epoch)
        if self._stepped >= self._pool.epoch:
            self._stepped = -1  # our step was not taken and nobody else's was: refusals of its epoch count again
        for k, (pace, good, refused, _) in enumerate(self._pool.paces):
            search = self._searches[k]
            target = pace or 0.0
            if target != search.target:
                search.target, search.since = target, None
            search.good = good or 0.0
            search.refused = math.inf if refused is None else refused

    def _epoch_of(self, admitted_at: float | None) -> int:
        """The pool's pace epoch when the request admitted at `admitted_at` was reserved (the latest if unknown)."""
        if admitted_at is None:
            return self._epoch
        i = bisect.bisect_right(self._epochs, (admitted_at, math.inf))
        return self._epochs[i - 1][1] if i > 0 else self._epoch

    def _step_back(self, dims: list[int], epoch: int) -> bool:
        """Refused while paced above the learnt rate: each of `dims` back to its last good pace, in the pool."""
        stepped = False
        for k in dims:
            learnt = self._pool.rates[k]
            if not learnt or not self._paced(k):
                continue
            if self._searches[k].step_back(learnt):
                self._send_pace(k, epoch, refusal=True)
                stepped = True
        if stepped:
            # The pool moves on from `epoch` (by this step or another process's): the other refusals of requests
            # reserved in it are of the pace just left.
            self._stepped = max(self._stepped, epoch)
        return stepped

    def _limits_given(self) -> tuple[float | None, ...]:
        g = self._given
        return (g.requests_per_minute, g.input_tokens_per_minute, g.output_tokens_per_minute, g.tokens_per_minute)

    def _observe_args(
        self, views: list[BucketView | None] | None, rtt: float | None = None, stale: float = 0.0
    ) -> list[Any]:
        """The OBSERVE script's arguments. `stale`: how much earlier than now the server may have counted the
        headers (the request's admission): a reset given as a moment then reaches that much further (`window.py`);
        the script's interval is symmetric, so its centre and its half-width move by half of it each."""
        args: list[Any] = [self._burst, "1" if self._smooth else "0", "" if rtt is None else f"{rtt:.6f}"]
        for k, given in enumerate(self._limits_given()):
            view = views[k] if views is not None else None
            seen = float(view.limit) if view is not None and view.limit > 0 else None
            if seen is not None:
                self._seen_limits[k] = seen
            limit = min((v for v in (given, seen) if v is not None), default=None)
            # The pool learns the window from every process's headers; `minute` overrides it.
            args += ["" if limit is None else limit, self._minute or ""]
            if view is None or seen is None:
                args += ["", 1.0, "", "", ""]
            else:
                tolerance = max(1.0, view.remaining_error)
                late = stale / 2 if view.reset_absolute else 0.0
                args += [view.remaining, tolerance, view.reset_in + late, view.reset_error + late, view.limit]
        return args

    def rate_limited(
        self,
        snapshot: RateLimitSnapshot | None,
        input_tokens: int,
        output_tokens: int,
        message: str = "",
        *,
        admitted_at: float | None = None,
    ) -> bool:
        """A 429 while the headers said every bucket had room is a short-interval limit: the named buckets (or
        all) are paced smoothly in the whole pool from now on and the ramp stops (True: no pause needed). False:
        an ordinary 429 (or the pool already paces smoothly), for the shared pause (`cool_down`). The local
        fallback answers while it runs."""
        if self._local is not None and snapshot is not None:
            scaled_snapshot = scaled(snapshot, self._divisor())
            return self._local.rate_limited(
                scaled_snapshot, input_tokens, output_tokens, message, admitted_at=admitted_at
            )
        views = Limiter._views(snapshot) if snapshot is not None else []
        if not views:
            return False
        amounts: dict[Binding, float] = {
            "requests": 1.0,
            "input_tokens": float(input_tokens),
            "output_tokens": float(output_tokens),
            "tokens": float(input_tokens + output_tokens),
        }
        empty = [_DIMS.index(n) for n, view in views if view.remaining - view.remaining_error + 1.0 < amounts[n]]
        epoch = self._epoch_of(admitted_at)
        if empty:
            # The bucket really was empty: the pool was behind the server, by a pace above the refill if it was
            # paced; a step back, and the pause the server asks for.
            if epoch == self._epoch and epoch > self._stepped and self._step_back(empty, epoch):
                self._smooth_since = self._clock.now()
                self._notify()
            return False
        lowered = message.lower()
        named = [names for words, names in _GATE_WORDS.items() if words in lowered]
        chosen = named[0] if named else tuple(_DIMS)
        known = self._known_limits()
        named_known = [k for k, name in enumerate(_DIMS) if name in chosen and known[k] is not None]
        fresh = [k for k in named_known if not self._paced(k)]
        if fresh:
            self._smoothed.update(fresh)
            for k in fresh:
                self._searches[k] = PaceSearch()  # the pool's new pace starts at the learnt rate (`SMOOTH`)
            self._send("SMOOTH", [self._burst, *(_CODES[_DIMS[k]] for k in fresh)])
            self._smooth_since = self._clock.now()
            self._notify()
            return True
        if (
            epoch < self._epoch
            or epoch <= self._stepped
            or (admitted_at is not None and admitted_at <= self._smooth_since)
        ):
            return True  # sent before the last change of pace, answered after it: already dealt with
        if not self._step_back(named_known, epoch):
            return False  # paced at the learnt rate and still refused: pause as the server asks
        self._smooth_since = self._clock.now()
        self._notify()
        return True

    def cool_down(self, seconds: float) -> None:
        """A 429: nobody in the pool is admitted for `seconds` (plus a little jitter)."""
        jitter = self._rng.uniform(0.0, min(1.0, 0.1 * seconds))
        self._cooldown_until = max(self._cooldown_until, self._clock.now() + seconds + jitter)
        self._send("PAUSE", [seconds, jitter])
        if self._local is not None:
            self._local.cool_down(seconds)
        self._notify()

    def overloaded(self) -> None:
        """A 529/503: halve the pool's adaptive concurrency."""
        self._send("PAUSE", [0, 0])
        if self._local is not None:
            self._local.overloaded()

    def saw_response(self) -> None:
        """Any response ends this process's single-request probe."""
        if self._local is not None:
            self._local.saw_response()
        if not self._seen:
            self._seen = True
            self._notify()

    @property
    def cooldown_until(self) -> float:
        return self._cooldown_until
