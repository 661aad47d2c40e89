"""The async gate every attempt passes: concurrency, request/input/output token buckets and the 429 pause.

The only code in sluicegate that waits for capacity. Waiters are served first come, first served, so a large
request at the head is not starved by small ones behind it, and retries queue with new work.

Limits are given by the user, learnt from the server's rate-limit headers, or both (the stricter wins). The
client's buckets hold at most `burst` seconds of refill (one second by default; at least two requests' worth),
and start with just that,
instead of a full minute: we do not know what the server's buckets hold, the real API enforces short-interval
limits ("60 RPM may be enforced as 1 request per second"), and a minute's burst, at t=0 or after a pause, is
how naive clients start their 429 storms. So admission is paced smoothly at the limit's rate (GCRA-like); a
request larger than the burst waits for a full bucket and leaves a debt. Every response's `remaining` also
pulls our level down when the server says we have less than we think.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import anyio

from .._clock import Clock, SystemClock
from .._exceptions import ConfigError
from .._models import BucketView, RateLimitSnapshot, Usage
from .._stats import Binding, LimiterStatistics
from .bucket import TokenBucket

__all__ = ["Limiter", "Limits", "Permit"]

_TOKEN_ROUNDING = 1000.0  # Anthropic rounds token `remaining` to the nearest thousand
_DEFAULT_CONCURRENCY_CAP = 512
_UNKNOWN_START = 4
_EPSILON = 1e-6  # concurrency after the first response when no limit is known (then AIMD)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-minute limits; None means "learn it from the server's headers"."""

    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    tokens_per_minute: float | None = None  # one combined token bucket (OpenAI-style)

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")


class _Gate:
    """One bucket with what the limiter knows about it."""

    __slots__ = ("bucket", "given", "limit", "name")

    def __init__(self, name: Binding, given: float | None) -> None:
        self.name = name
        self.given = given  # the user's limit is a ceiling: headers may lower it, never raise it
        self.limit: float | None = None  # per rate-limit minute, in force now
        self.bucket: TokenBucket | None = None


class Permit:
    """One admitted attempt: its concurrency slot and the tokens reserved for it."""

    __slots__ = ("_done", "_limiter", "admitted_at", "input_tokens", "output_tokens")

    def __init__(self, limiter: Limiter, input_tokens: int, output_tokens: int, admitted_at: float) -> None:
        self._limiter = limiter
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.admitted_at = admitted_at
        self._done = False

    def settle(self, usage: Usage) -> None:
        """Success: charge what the server really counted, refund the rest, free the slot, learn latency."""
        if self._done:
            return
        self._done = True
        self._limiter._settle(self, usage.rate_limited_input_tokens, usage.output_tokens, success=True)

    def release(self, *, charged: bool = False) -> None:
        """Failure without usage: free the slot. `charged` keeps the request and input tokens spent
        (the server may have counted them, e.g. a 5xx); a 429 was not admitted and refunds everything."""
        if self._done:
            return
        self._done = True
        if charged:
            self._limiter._settle(self, self.input_tokens, 0, success=False)
        else:
            self._limiter._refund_all(self)


class Limiter:
    """Concurrency + request/input/output (+ combined) token buckets + a shared cool-down after 429s."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Clock | None = None,
        max_concurrency: int | None = None,
        minute: float = 60.0,
        burst: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if minute <= 0:
            raise ConfigError("minute must be positive")
        limits = limits or Limits()
        self._clock = clock or SystemClock()
        self._minute = minute
        if burst <= 0:
            raise ConfigError("burst must be positive")
        self._burst = burst
        self._rng = rng or random.Random()
        self._cap = max_concurrency
        now = self._clock.now()
        self._gates: dict[str, _Gate] = {
            "requests": _Gate("requests", limits.requests_per_minute),
            "input_tokens": _Gate("input_tokens", limits.input_tokens_per_minute),
            "output_tokens": _Gate("output_tokens", limits.output_tokens_per_minute),
            "tokens": _Gate("tokens", limits.tokens_per_minute),
        }
        for gate in self._gates.values():
            if gate.given is not None:
                self._set_limit(gate, gate.given, now)
        self._in_flight = 0
        self._seen_response = False
        self._slow_start = True
        self._aimd_limit = float(_UNKNOWN_START)
        self._latency: float | None = None
        self._best_cost: float | None = None
        self._cost_ewma: float | None = None
        self._last_decrease = -math.inf
        self._avg_in: float | None = None
        self._avg_out: float | None = None
        self._cooldown_until = -math.inf
        self._queue: list[anyio.Event] = []  # FIFO of waiters; only the head may take capacity
        self._changed = anyio.Event()
        self._binding: Binding | None = None

    # -- admission -----------------------------------------------------------------------------------------

    async def acquire(self, input_tokens: int, output_tokens: int) -> Permit:
        """Wait until a slot and the tokens are available (first come, first served), then take them."""
        turn = anyio.Event()
        self._queue.append(turn)
        if len(self._queue) == 1:
            turn.set()
        try:
            # Only the head of the queue watches capacity; the others sleep until it is their turn, so an
            # admission wakes one task, not every waiter.
            await turn.wait()
            while True:
                changed = self._changed
                now = self._clock.now()
                wait, binding = self._wait_time(input_tokens, output_tokens, now)
                # Float refill can leave a sliver like 1e-13 s that a virtual clock cannot even represent as
                # a step; such a wait is rounding, not capacity.
                if wait <= _EPSILON:
                    self._take(input_tokens, output_tokens, now)
                    self._binding = None
                    return Permit(self, input_tokens, output_tokens, now)
                self._binding = binding
                with anyio.move_on_after(wait):
                    await changed.wait()
        finally:
            head = self._queue[0] is turn
            self._queue.remove(turn)
            if head and self._queue:
                self._queue[0].set()

    def _wait_time(self, input_tokens: int, output_tokens: int, now: float) -> tuple[float, Binding]:
        if now < self._cooldown_until:
            return self._cooldown_until - now, "cooldown"
        if self._in_flight >= self.concurrency_limit():
            return math.inf, "concurrency"
        worst = 0.0
        binding: Binding = "requests"
        for gate, amount in self._amounts(input_tokens, output_tokens):
            assert gate.bucket is not None
            self._fit(gate.bucket, amount, now)
            wait = gate.bucket.wait_time(amount, now)
            if wait > worst:
                worst, binding = wait, gate.name
        return worst, binding

    @staticmethod
    def _fit(bucket: TokenBucket, amount: float, now: float) -> None:
        """Hold at least two requests of this size, at the same rate. A bucket smaller than one request can only
        admit it when full, so a refund arriving then (a reservation settled lower) spills over and is lost: an
        OTPM-bound run with 1,024-token reservations lost a tenth of its throughput that way."""
        if bucket.capacity < 2 * amount:
            level = bucket.level(now)  # room to hold refunds, not a gift of tokens
            bucket.resize(2 * amount, period=2 * amount / bucket.rate, now=now)
            bucket.set_level(level, now)

    def _amounts(self, input_tokens: int, output_tokens: int) -> list[tuple[_Gate, float]]:
        g = self._gates
        pairs = (
            (g["requests"], 1.0),
            (g["input_tokens"], float(input_tokens)),
            (g["output_tokens"], float(output_tokens)),
            (g["tokens"], float(input_tokens + output_tokens)),
        )
        return [(gate, amount) for gate, amount in pairs if gate.bucket is not None]

    def _take(self, input_tokens: int, output_tokens: int, now: float) -> None:
        for gate, amount in self._amounts(input_tokens, output_tokens):
            assert gate.bucket is not None
            gate.bucket.take(amount, now)
        self._in_flight += 1

    def _settle(self, permit: Permit, input_tokens: int, output_tokens: int, *, success: bool) -> None:
        now = self._clock.now()
        g = self._gates
        deltas = (
            (g["input_tokens"], input_tokens - permit.input_tokens),
            (g["output_tokens"], output_tokens - permit.output_tokens),
            (g["tokens"], input_tokens + output_tokens - permit.input_tokens - permit.output_tokens),
        )
        for gate, delta in deltas:
            if gate.bucket is None or delta == 0:
                continue
            if delta > 0:
                gate.bucket.take(delta, now)
            else:
                gate.bucket.refund(-delta, now)
        self._in_flight -= 1
        if success:
            self._learn(now - permit.admitted_at, input_tokens, output_tokens, now)
        self._notify()

    def _refund_all(self, permit: Permit) -> None:
        now = self._clock.now()
        for gate, amount in self._amounts(permit.input_tokens, permit.output_tokens):
            assert gate.bucket is not None
            gate.bucket.refund(amount, now)
        self._in_flight -= 1
        self._notify()

    def _learn(self, latency: float, input_tokens: int, output_tokens: int, now: float) -> None:
        # Exponentially weighted averages: recent behaviour matters, one outlier does not dominate.
        alpha = 0.1
        self._latency = latency if self._latency is None else self._latency + alpha * (latency - self._latency)
        self._avg_in = input_tokens if self._avg_in is None else self._avg_in + alpha * (input_tokens - self._avg_in)
        self._avg_out = (
            output_tokens if self._avg_out is None else self._avg_out + alpha * (output_tokens - self._avg_out)
        )
        # Without headers, latency is the only sign of a server queueing our requests (a local vLLM never says
        # 429): seconds per output token, against the best seen (slowly forgotten). Twice the best means more
        # concurrency only lengthens the queue: AIMD stops increasing, and decreases by a quarter at most once
        # per round trip while it stays there.
        cost = latency / (output_tokens + 20)
        self._best_cost = cost if self._best_cost is None else min(self._best_cost * 1.001, cost)
        # A quicker average than the others: slow start doubles per round trip, so a late signal overshoots.
        self._cost_ewma = cost if self._cost_ewma is None else self._cost_ewma + 0.3 * (cost - self._cost_ewma)
        if self._cost_ewma > 2.0 * self._best_cost:
            self._slow_start = False
            if now - self._last_decrease >= latency:
                self._aimd_limit = max(1.0, self._aimd_limit * 0.75)
                self._last_decrease = now
            return
        # AIMD additive increase: exponential (slow start) until the first overload, then one per window.
        self._aimd_limit += 1.0 if self._slow_start else 1.0 / max(1.0, self._aimd_limit)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- what the server tells us --------------------------------------------------------------------------

    def observe(self, snapshot: RateLimitSnapshot, now: float | None = None) -> None:
        """Learn limits from a response's rate-limit headers and never hold more than the server says is left."""
        self._seen_response = True
        now = self._clock.now() if now is None else now
        views: list[tuple[str, BucketView | None]] = [
            ("requests", snapshot.requests),
            ("input_tokens", snapshot.input_tokens),
            ("output_tokens", snapshot.output_tokens),
        ]
        # Anthropic's combined "tokens" is input + output when both are reported: enforcing it adds nothing.
        if snapshot.input_tokens is None and snapshot.output_tokens is None:
            views.append(("tokens", snapshot.tokens))
        for name, view in views:
            if view is None or view.limit <= 0:
                continue
            gate = self._gates[name]
            limit = float(view.limit) if gate.given is None else min(gate.given, float(view.limit))
            tolerance = 1.0 if name == "requests" else _TOKEN_ROUNDING / 2
            self._set_limit(gate, limit, now)
            assert gate.bucket is not None
            if gate.bucket.level(now) > view.remaining + tolerance:
                gate.bucket.set_level(float(view.remaining), now)
        self._notify()

    def cool_down(self, seconds: float) -> None:
        """A 429: nobody is admitted for `seconds`, then waiters resume spread over a short jitter window."""
        now = self._clock.now()
        jitter = self._rng.uniform(0.0, min(1.0, 0.1 * seconds))
        self._cooldown_until = max(self._cooldown_until, now + seconds + jitter)
        self._decrease()
        self._notify()

    def overloaded(self) -> None:
        """A 529/503 or similar: multiplicative decrease of the adaptive concurrency."""
        self._decrease()
        self._notify()

    def saw_response(self) -> None:
        """Any response (even one without rate-limit headers) ends the single-request probe."""
        if not self._seen_response:
            self._seen_response = True
            self._notify()

    def _decrease(self) -> None:
        self._slow_start = False
        self._aimd_limit = max(1.0, self._aimd_limit / 2)

    @property
    def cooldown_until(self) -> float:
        return self._cooldown_until

    # -- sizing --------------------------------------------------------------------------------------------

    def _set_limit(self, gate: _Gate, limit: float, now: float) -> None:
        """A bucket refilled at `limit` per minute holding at most `burst` seconds of it."""
        if gate.limit == limit:
            return
        period = self._burst * self._minute / 60.0
        capacity = limit * self._burst / 60.0
        if gate.bucket is None:
            gate.bucket = TokenBucket(capacity, period=period, now=now)
        else:
            gate.bucket.resize(capacity, period=period, now=now)
        gate.limit = limit

    def ceiling(self) -> float | None:
        """Requests per second the known limits allow (None when no limit is known yet)."""
        rates: list[float] = []
        g = self._gates
        per_second = 1.0 / self._minute
        if g["requests"].limit is not None:
            rates.append(g["requests"].limit * per_second)
        for name, avg in (("input_tokens", self._avg_in), ("output_tokens", self._avg_out)):
            limit = g[name].limit
            if limit is not None and avg:
                rates.append(limit * per_second / avg)
        tokens = g["tokens"].limit
        if tokens is not None and self._avg_in is not None and self._avg_out is not None:
            rates.append(tokens * per_second / max(1.0, self._avg_in + self._avg_out))
        return min(rates) if rates else None

    def concurrency_limit(self) -> int:
        """Little's law (in-flight = rate x latency, doubled for headroom) when the limits are known; AIMD when
        they are not; one probe request until the first response, so a bad key costs one request."""
        cap = self._cap or _DEFAULT_CONCURRENCY_CAP
        if not self._seen_response:
            return 1
        rate = self.ceiling()
        if rate is not None:
            # The buckets pace admission; this cap only has to stay above what the rate needs.
            if self._latency is None:
                return min(cap, _UNKNOWN_START)
            return max(1, min(cap, math.ceil(rate * self._latency * 2.0) + 2))
        return max(1, min(cap, math.floor(self._aimd_limit)))

    def statistics(self) -> LimiterStatistics:
        now = self._clock.now()

        def per_minute(name: str) -> float | None:
            # Per real minute: with an emulator in compressed time (minute < 60 s) displays and utilization
            # figures then compare like with like.
            limit = self._gates[name].limit
            return None if limit is None else limit * 60.0 / self._minute

        return LimiterStatistics(
            in_flight=self._in_flight,
            concurrency_limit=self.concurrency_limit(),
            waiting=len(self._queue),
            requests_per_minute=per_minute("requests"),
            input_tokens_per_minute=per_minute("input_tokens"),
            output_tokens_per_minute=per_minute("output_tokens"),
            tokens_per_minute=per_minute("tokens"),
            binding=self._binding if self._queue else None,
            cooldown_remaining=max(0.0, self._cooldown_until - now),
            latency_estimate=self._latency,
        )
