"""What the server tells the shared limiter, shared with the pool: headers, 429s, overload, the first response.

A base of `SharedLimiter` (`shared.py`) over its link to Redis (`_shared_link.py`), split out so each module
stays readable; it owns no state of its own. What the headers say goes to the pool through the outbox; a 429
while the headers said every bucket had room makes the named buckets smooth in the whole pool. While Redis is
lost, the local fallback answers, on its 1/N of the limits.
"""

from __future__ import annotations

from typing import Any

from .._models import BucketView, RateLimitSnapshot
from .._stats import Binding
from ._fallback import scaled
from ._limiter_signals import _GATE_WORDS
from ._shared_link import PoolLink
from .limiter import Limiter, Limits

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
        args = self._observe_args(views, None if started is None else now - started)
        self._last_observe = args
        self._send("OBSERVE", args)
        self._notify()

    def _limits_given(self) -> tuple[float | None, ...]:
        g = self._given
        return (g.requests_per_minute, g.input_tokens_per_minute, g.output_tokens_per_minute, g.tokens_per_minute)

    def _observe_args(self, views: list[BucketView | None] | None, rtt: float | None = None) -> list[Any]:
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
                args += [view.remaining, tolerance, view.reset_in, view.reset_error, view.limit]
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
        views = Limiter._views(snapshot) if snapshot is not None and not self._smooth else []
        if not views:
            return False
        amounts: dict[Binding, float] = {
            "requests": 1.0,
            "input_tokens": float(input_tokens),
            "output_tokens": float(output_tokens),
            "tokens": float(input_tokens + output_tokens),
        }
        if any(view.remaining - view.remaining_error + 1.0 < amounts[name] for name, view in views):
            return False  # the bucket really was empty: the pool was behind the server
        lowered = message.lower()
        named = [names for words, names in _GATE_WORDS.items() if words in lowered]
        chosen = named[0] if named else tuple(_DIMS)
        known = self._known_limits()
        fresh = [
            k
            for k, name in enumerate(_DIMS)
            if name in chosen and known[k] is not None and not (k in self._smoothed or self._pool.smooth[k])
        ]
        if fresh:
            self._smoothed.update(fresh)
            self._send("SMOOTH", [self._burst, *(_CODES[_DIMS[k]] for k in fresh)])
            self._smooth_since = self._clock.now()
            self._notify()
            return True
        # Sent before the change of pace, answered after it: already dealt with.
        return admitted_at is not None and admitted_at <= self._smooth_since

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
