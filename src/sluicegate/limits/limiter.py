"""The async gate every attempt passes: concurrency, request/input/output token buckets and the 429 pause.

The only code in sluicegate that waits for capacity. Waiters are served first come, first served, so a large
request at the head is not starved by small ones behind it, and retries queue with new work.

Each limit is a mirror of the server's bucket (`gate.py`): capacity from the headers' `limit` (or the user's,
the stricter wins), refill window learnt from `remaining` and `reset` (`window.py`), level synced to every
response's `remaining`. So after the first response the client holds what the server says is left and spends
it as fast as the server accepts it, ramped like TCP's slow start (`ramp.py`). A 429 while the headers said
capacity remained is a short-interval limit: from then on that bucket is paced smoothly, starting at half the rate
that was refused (as it is from the start with `smooth=True`). A 429 from a bucket the headers say is empty syncs
that bucket down; the shared pause (`cool_down`) is left for 429s that the headers do not explain. Those reactions
to responses are in `_limiter_signals.py`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from .._clock import Clock, SystemClock, wait_event
from .._exceptions import ConfigError, InputError
from .._models import Usage
from .._stats import Binding, LimiterStatistics
from ._limiter_signals import ServerSignals
from .adaptive import Adaptive
from .counting import CountingMoment
from .gate import Gate
from .ramp import Ramp

__all__ = ["Limiter", "Limits", "Permit"]

_DEFAULT_CONCURRENCY_CAP = 512
_EPSILON = 1e-6  # the shortest wait: shorter ones are float rounding that a virtual clock may not represent
_UNKNOWN_OUTPUT_SHARE = 0.25  # produced accounting: one request's unknown output holds at most this much


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Limits per window (a minute unless the headers or `minute=` say otherwise); None means "learn it"."""

    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    tokens_per_minute: float | None = None  # one combined token bucket (OpenAI-style)

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")


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


class _Waiter:
    """One `acquire` in the queue: what it asks for, its wake-up, and its permit once the head admitted it."""

    __slots__ = ("_estimate", "_input_tokens", "output_tokens", "permit", "turn")

    def __init__(self, input_tokens: int, output_tokens: int, estimate: Callable[[], int] | None) -> None:
        self._input_tokens = input_tokens
        self._estimate = estimate
        self.output_tokens = output_tokens
        self.turn = anyio.Event()
        self.permit: Permit | None = None

    @property
    def input_tokens(self) -> int:
        """The input tokens to charge now: the estimator may have been calibrated since this request queued."""
        return self._input_tokens if self._estimate is None else self._estimate()


class Limiter(ServerSignals):
    """Concurrency + request/input/output (+ combined) token buckets + a shared cool-down after 429s.

    `minute` overrides the learnt window of every limit (seconds per rate-limit window; an emulator in
    compressed time, when its headers cannot be trusted). `smooth=True` paces every bucket at its rate from
    the start instead of spending the server's allowance first. `output_accounting` says how the server counts
    output tokens: "reserved" charges `max_tokens` at admission (so a request above the limit is refused
    forever), "produced" counts them as they are generated (so an unknown length must not hold admission).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Clock | None = None,
        max_concurrency: int | None = None,
        minute: float | None = None,
        smooth: bool = False,
        output_accounting: Literal["produced", "reserved"] = "reserved",
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if minute is not None and minute <= 0:
            raise ConfigError("minute must be positive")
        limits = limits or Limits()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._cap = max_concurrency
        self._smooth = smooth
        self._reserved = output_accounting == "reserved"
        now = self._clock.now()
        given: dict[Binding, float | None] = {
            "requests": limits.requests_per_minute,
            "input_tokens": limits.input_tokens_per_minute,
            "output_tokens": limits.output_tokens_per_minute,
            "tokens": limits.tokens_per_minute,
        }
        self._gates = {name: Gate(name, value, override=minute, smooth=smooth) for name, value in given.items()}
        for gate in self._gates.values():
            if gate.given is not None:
                gate.set_limit(gate.given, now)
        self._ramp = Ramp()
        self._counting = CountingMoment()
        self._adaptive = Adaptive()
        self._in_flight = 0
        self._seen_response = False
        self._cooldown_until = -math.inf
        self._smooth_since = -math.inf if not smooth else 0.0
        self._queue: list[_Waiter] = []  # FIFO of waiters; only the head takes capacity, for itself and those behind
        self._changed = anyio.Event()
        self._binding: Binding | None = None

    # -- admission -----------------------------------------------------------------------------------------

    async def acquire(
        self, input_tokens: int, output_tokens: int, *, estimate: Callable[[], int] | None = None
    ) -> Permit:
        """Wait until a slot and the tokens are available (first come, first served), then take them.

        `estimate`, when given, is asked for the input tokens again whenever admission is decided, so what is
        charged is the estimator's view at admission, not at the call. Raises InputError at once for a request
        the server would refuse forever (larger than a bucket).
        """
        if not self._queue:
            # Nobody waits and the capacity is there: taken at once, without yielding to the event loop. A burst
            # of requests (a gateway's wave of a hundred) then passes in the turn it arrives in, not one turn each.
            now = self._clock.now()
            self._refuse_if_oversize(input_tokens, output_tokens)
            out = self._output_charge(output_tokens)
            if self._wait_time(input_tokens, out, now)[0] <= 0.0:
                return self._grant(input_tokens, out, now)
        waiter = _Waiter(input_tokens, output_tokens, estimate)
        self._queue.append(waiter)
        if len(self._queue) == 1:
            waiter.turn.set()
        try:
            # Only the head of the queue watches capacity; the others sleep until the head admits them or hands
            # them its place, so an admission wakes only the tasks it lets in.
            await waiter.turn.wait()
            if waiter.permit is not None:
                return waiter.permit  # admitted by the head in its pass
            while True:
                changed = self._changed
                now = self._clock.now()
                input_tokens = waiter.input_tokens
                self._refuse_if_oversize(input_tokens, output_tokens)
                out = self._output_charge(output_tokens)
                wait, binding = self._wait_time(input_tokens, out, now)
                if wait <= 0.0:
                    self._queue.remove(waiter)
                    permit = self._grant(input_tokens, out, now)
                    self._admit_followers(now)
                    return permit
                self._binding = binding
                # Never admit early: a server computing the same refill in floats may be a hair short. A wait
                # shorter than a virtual clock's step is stretched to one.
                await wait_event(self._clock, changed, max(wait, _EPSILON))
        except BaseException:
            if waiter.permit is not None:  # admitted by the head, then cancelled before it could resume
                waiter.permit.release()
            raise
        finally:
            if self._queue and waiter in self._queue:
                head = self._queue[0] is waiter
                self._queue.remove(waiter)
                if head and self._queue:
                    self._queue[0].turn.set()

    def _grant(self, input_tokens: int, output_tokens: int, now: float) -> Permit:
        self._take(input_tokens, output_tokens, now)
        self._binding = None
        return Permit(self, input_tokens, output_tokens, now)

    def _admit_followers(self, now: float) -> None:
        """The head was just admitted: admit every waiter behind it that fits now, in order, in this same pass
        (one wake per admitted task instead of one event-loop turn per admission), and hand the head's place to
        the first that does not fit, which then sleeps until capacity frees or refills."""
        while self._queue:
            waiter = self._queue[0]
            out = self._output_charge(waiter.output_tokens)
            input_tokens = waiter.input_tokens
            if self._oversize(input_tokens, waiter.output_tokens) or self._wait_time(input_tokens, out, now)[0] > 0.0:
                waiter.turn.set()  # the new head: it waits, or raises InputError in its own task
                return
            self._queue.pop(0)
            waiter.permit = self._grant(input_tokens, out, now)
            waiter.turn.set()

    def _oversize(self, input_tokens: int, output_tokens: int) -> bool:
        try:
            self._refuse_if_oversize(input_tokens, output_tokens)
        except InputError:
            return True
        return False

    def _refuse_if_oversize(self, input_tokens: int, output_tokens: int) -> None:
        g = self._gates
        checks: list[tuple[Gate, float, str, str]] = [(g["input_tokens"], input_tokens, "input tokens", "messages")]
        if self._reserved:
            checks.append((g["output_tokens"], output_tokens, "output tokens", "max_tokens"))
            checks.append((g["tokens"], input_tokens + output_tokens, "tokens", "max_tokens"))
        for gate, amount, what, field in checks:
            if not gate.fits(amount):
                assert gate.limit is not None
                raise InputError(
                    f"this request needs {amount:,.0f} {what} at once, more than the rate limit's whole bucket "
                    f"of {gate.limit:,.0f} {what}: the server would refuse it every time",
                    field=field,
                )

    def _output_charge(self, output_tokens: int) -> int:
        """Reserved accounting charges what the server charges; produced accounting charges the estimate, but
        never so much of the bucket that an unknown (or larger than the bucket) length stalls admission."""
        gate = self._gates["output_tokens"]
        if self._reserved or gate.limit is None:
            return output_tokens
        return max(1, min(output_tokens, math.ceil(gate.limit * _UNKNOWN_OUTPUT_SHARE)))

    def _pace_amounts(self, input_tokens: int, output_tokens: int) -> list[tuple[Gate, float, float]]:
        """(gate, mirror charge, pacing charge): pacing counts the output expected, not a reservation."""
        g = self._gates
        expected = output_tokens
        if self._adaptive.avg_out is not None:
            expected = min(output_tokens, math.ceil(self._adaptive.avg_out))
        rows = (
            (g["requests"], 1.0, 1.0),
            (g["input_tokens"], float(input_tokens), float(input_tokens)),
            (g["output_tokens"], float(output_tokens), float(expected)),
            (g["tokens"], float(input_tokens + output_tokens), float(input_tokens + expected)),
        )
        return [row for row in rows if row[0].mirror is not None]

    def _wait_time(self, input_tokens: int, output_tokens: int, now: float) -> tuple[float, Binding]:
        if now < self._cooldown_until:
            return self._cooldown_until - now, "cooldown"
        if self._in_flight >= self.concurrency_limit():
            return math.inf, "concurrency"
        if not self._seen_response:
            # The probe goes out alone and at once: a fresh bucket holds far more than one request, and until its
            # headers say what is left, the given limits' start (one second of refill) would only delay it.
            return 0.0, "requests"
        worst = self._ramp.wait_time(now)
        binding: Binding = "requests"
        for gate, amount, pace in self._pace_amounts(input_tokens, output_tokens):
            wait = gate.wait_time(amount, pace, now)
            if wait > worst:
                worst, binding = wait, gate.name
        return worst, binding

    def _take(self, input_tokens: int, output_tokens: int, now: float) -> None:
        for gate, amount, pace in self._pace_amounts(input_tokens, output_tokens):
            gate.take(amount, pace, now)
        self._ramp.take(now)
        self._in_flight += 1

    def _settle(self, permit: Permit, input_tokens: int, output_tokens: int, *, success: bool) -> None:
        now = self._clock.now()
        g = self._gates
        # The server counts input tokens once, at admission: a `remaining` that came after is the real count.
        g["input_tokens"].correct(input_tokens - permit.input_tokens, permit.admitted_at, now)
        g["output_tokens"].adjust(output_tokens - permit.output_tokens, now)
        g["tokens"].adjust(input_tokens + output_tokens - permit.input_tokens - permit.output_tokens, now)
        self._in_flight -= 1
        if success:
            self._adaptive.learn(now - permit.admitted_at, input_tokens, output_tokens, now)
        self._notify()

    def _refund_all(self, permit: Permit) -> None:
        now = self._clock.now()
        for gate, amount, _ in self._pace_amounts(permit.input_tokens, permit.output_tokens):
            # Refused: a `remaining` that came after it never held it, and the mirror set to that does not either.
            gate.correct(-amount, permit.admitted_at, now)
        self._in_flight -= 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- sizing --------------------------------------------------------------------------------------------

    def windows(self) -> dict[str, float]:
        """Seconds per window of each known limit (learnt, overridden or the one-minute default)."""
        return {name: gate.seconds() for name, gate in self._gates.items() if gate.limit is not None}

    def ceiling(self) -> float | None:
        """Requests per second the known limits allow in steady state (None when no limit is known yet)."""
        rates: list[float] = []
        g = self._gates
        avg_in, avg_out = self._adaptive.avg_in, self._adaptive.avg_out
        pairs: tuple[tuple[Binding, float | None], ...] = (
            ("requests", 1.0),
            ("input_tokens", avg_in),
            ("output_tokens", avg_out),
        )
        for name, avg in pairs:
            rate = g[name].rate()
            if rate is not None and avg:
                rates.append(rate / avg)
        tokens = g["tokens"].rate()
        if tokens is not None and avg_in is not None and avg_out is not None:
            rates.append(tokens / max(1.0, avg_in + avg_out))
        return min(rates) if rates else None

    def concurrency_limit(self) -> int:
        """With known limits the buckets pace admission and the cap only bounds memory; AIMD when no limit is
        known; one probe request until the first response, so a bad key costs one request."""
        cap = self._cap or _DEFAULT_CONCURRENCY_CAP
        if not self._seen_response:
            return 1
        if any(gate.limit is not None for gate in self._gates.values()):
            return cap
        return max(1, min(cap, math.floor(self._adaptive.limit)))

    def statistics(self) -> LimiterStatistics:
        now = self._clock.now()
        g = self._gates
        return LimiterStatistics(
            in_flight=self._in_flight,
            concurrency_limit=self.concurrency_limit(),
            waiting=len(self._queue),
            # Per real minute, from the learnt window: a 6-second emulated minute or a per-day limit reads right.
            requests_per_minute=g["requests"].per_minute(),
            input_tokens_per_minute=g["input_tokens"].per_minute(),
            output_tokens_per_minute=g["output_tokens"].per_minute(),
            tokens_per_minute=g["tokens"].per_minute(),
            binding=self._binding if self._queue else None,
            cooldown_remaining=max(0.0, self._cooldown_until - now),
            latency_estimate=self._adaptive.latency,
            buckets={name: gate.limit for name, gate in g.items() if gate.limit is not None},
        )
