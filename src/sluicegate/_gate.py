"""The one attempt policy: acquire -> send -> observe headers -> settle or release -> decide -> cool down or back off.

The Engine, the SDK drop-in transport and the Message Batches client each send requests their own way, but every
decision around an attempt is made here, once: what the limiter is charged, when everyone pauses (a 429), when the
run slows down as a whole (a burst of 529s: the circuit breaker), when it stops (a bad key, a host that cannot be
reached), and how long one item backs off.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ._breaker import Breaker, Ticket
from ._clock import Clock
from ._errors import ERROR_KINDS
from ._models import RateLimitSnapshot, Usage
from .limits.protocol import AdmissionPermit as Permit
from .limits.protocol import LimiterLike
from .retry import Outcome, RetryDecision, RetryPolicy, decide

__all__ = ["AttemptGate", "Pass", "Verdict"]

# Failures that say nothing about overload: they neither trip nor close the breaker. A refused connection does
# (a service that turns everyone away), so a dead host is probed, not hammered by every item's own timer.
_NO_SIGNAL = frozenset({"timeout", "transport"})
_TURNED_AWAY = frozenset({"overloaded", "connect"})
# Failures that make the limiter's adaptive concurrency back off (AIMD, when no limits are known).
_BACK_OFF = frozenset({"overloaded", "server", "connect", "timeout"})
_UNREACHABLE_AFTER_FAILURES = 3


@dataclass(slots=True)
class Pass:
    """One attempt let through the gate: the limiter's permit (None without a limiter) and the breaker's ticket."""

    permit: Permit | None
    ticket: Ticket
    admitted_at: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision after a failed attempt, and what the caller does next.

    `wait` is how long this item sleeps before queueing again: its own backoff, or 0 when the shared 429 cool-down
    or the open breaker is the wait. `cooled` is set when this failure paused admission for everyone. `counts` is
    False for a probe the breaker sent on everyone's behalf: it does not use up the item's attempts.
    """

    decision: RetryDecision
    wait: float
    cooled: bool = False
    counts: bool = True

    @property
    def retry(self) -> bool:
        return self.decision.retry


class AttemptGate:
    """One limiter (optional), one breaker and one retry policy, shared by every attempt of one client."""

    def __init__(
        self,
        *,
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random,
        limiter: LimiterLike | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self.retry = retry
        self.limiter = limiter
        self.breaker = breaker or Breaker(
            clock,
            window=retry.breaker_window,
            min_failures=retry.breaker_min_failures,
            trip_ratio=retry.breaker_trip_ratio,
            probe_interval=retry.breaker_probe_interval,
            max_probe_interval=retry.breaker_max_probe_interval,
        )
        self._clock = clock
        self._rng = rng
        self.attempts = 0  # attempts sent, retries included
        self.failures: Counter[str] = Counter()  # failed attempts by reason ("rate_limited", "overloaded", ...)
        self._failing_since: float | None = None  # first connect failure since the last answer
        self._failing_count = 0
        self._gave_up = False  # gave up on the host: every attempt fails at its first refused connection
        self._at_limiter: dict[anyio.CancelScope, Ticket] = {}  # attempts waiting for capacity, by their scope
        self.answered = False  # the server has answered an attempt (any status): the limits can be known

    # -- acquire -------------------------------------------------------------------------------------------

    async def acquire(
        self, input_tokens: int = 0, output_tokens: int = 0, *, estimate: Callable[[], int] | None = None
    ) -> Pass:
        """Wait for the breaker, then the limiter; the pass ends in `succeeded`, `failed`, `cancelled` or `unused`.

        `estimate` re-counts the input tokens when the limiter admits (see `LimiterLike.acquire`)."""
        while True:
            ticket = await self.breaker.wait_turn()
            permit: Permit | None = None
            scope = anyio.CancelScope()
            self._at_limiter[scope] = ticket
            try:
                with scope:
                    if self.limiter is not None:
                        if estimate is not None:
                            input_tokens = estimate()  # after the breaker's wait, which may have been long
                        permit = await self.limiter.acquire(input_tokens, output_tokens, estimate=estimate)
            except BaseException:
                self.breaker.forget(ticket)
                raise
            finally:
                del self._at_limiter[scope]
            if scope.cancelled_caught:  # the breaker opened: back to it, without taking capacity first
                self.breaker.forget(ticket)
                continue
            if self.breaker.current(ticket):
                break
            # The breaker opened while this attempt waited for capacity: give the capacity back and wait for the
            # breaker, or every request queued at the limiter would still go out into the overload.
            if permit is not None:
                permit.release()
            self.breaker.forget(ticket)
        self.attempts += 1
        admitted_at = permit.admitted_at if permit is not None else self._clock.now()
        return Pass(permit, ticket, admitted_at)

    # -- observe -------------------------------------------------------------------------------------------

    def observe(self, snapshot: RateLimitSnapshot | None, now: float | None = None) -> None:
        """The server answered (any status): learn its rate-limit headers; the host is reachable."""
        self.answered = True
        self._failing_since = None
        self._failing_count = 0
        self._gave_up = False
        if self.limiter is None:
            return
        if snapshot is not None and not snapshot.empty:
            self.limiter.observe(snapshot, now)
        else:
            self.limiter.saw_response()

    # -- settle or release -----------------------------------------------------------------------------------

    def succeeded(self, p: Pass, usage: Usage) -> None:
        """Charge what the server counted, refund the rest, and tell the breaker the service answered."""
        if p.permit is not None:
            p.permit.settle(usage)
        self.breaker.record(p.ticket, overloaded=False, target=self._target())

    def unused(self, p: Pass) -> None:
        """The pass was not used after all (the run stopped, the key was refused meanwhile): give it all back."""
        self.attempts -= 1
        if p.permit is not None:
            p.permit.release()
        self.breaker.forget(p.ticket)

    def cancelled(self, p: Pass) -> None:
        """Cancelled mid-attempt: the server may have counted it, so its reservation stays charged."""
        if p.permit is not None:
            p.permit.release(charged=True)
        self.breaker.forget(p.ticket)

    # -- decide, cool down or back off -------------------------------------------------------------------------

    def failed(
        self,
        p: Pass,
        outcome: Outcome,
        attempt: int,
        *,
        snapshot: RateLimitSnapshot | None = None,
        message: str = "",
    ) -> Verdict:
        """Release the pass as the failure's kind says, decide, and react for everyone (cool-down, breaker).

        `attempt` counts this item's attempts that used up its budget, this one included; `snapshot` and `message`
        are the failed answer's rate-limit headers and error message (a 429's tell which limit refused it).
        An overload the breaker holds everyone back for (it is open or ramping once this answer is recorded) is
        the breaker's business, not the item's: no private timer, no attempt used up (a probe's neither), and the
        limiter's concurrency is not halved for it (each of a burst's 529s would halve it again, leaving a slow
        start from one request after the overload)."""
        now = self._clock.now()
        kind = outcome.kind
        spec = ERROR_KINDS[kind]
        decision = self._unreachable(outcome, now)
        self.failures[outcome.reason] += 1
        if p.permit is not None:
            p.permit.release(charged=spec.counted)
        if kind in _NO_SIGNAL or (kind == "connect" and self._gave_up):
            self.breaker.forget(p.ticket)
        else:
            self.breaker.record(p.ticket, overloaded=kind in _TURNED_AWAY, target=self._target())
            self._recall_stale()
        held = kind in _TURNED_AWAY and outcome.should_retry is not False and not self.breaker.closed
        if decision is None:
            decision = (
                RetryDecision(True, 0.0, outcome.reason, kind)
                if held
                else decide(self.retry, outcome, attempt, self._rng)
            )
        cooled = False
        if kind == "rate_limited" and self._short_interval(p, snapshot, message):
            pass  # a short-interval limit: the limiter now paces that bucket smoothly; no shared pause
        elif kind == "rate_limited" and (decision.cooldown or outcome.retry_after):
            # Even when this item gives up, the server's 429 holds for everyone else.
            pause = decision.delay if decision.cooldown else min(outcome.retry_after or 0.0, self.retry.max_retry_after)
            if self.limiter is not None:
                self.limiter.cool_down(pause)
                cooled = True
        elif kind in _BACK_OFF and self.limiter is not None and not held:
            self.limiter.overloaded()
        wait = decision.delay
        if decision.cooldown and self.limiter is not None:
            wait = 0.0  # the limiter's cool-down is the wait, shared by everyone
        return Verdict(decision, wait if decision.retry else 0.0, cooled, counts=not held)

    def accepted(self, p: Pass) -> None:
        """A 200's headers arrived for an attempt the breaker let through while open or ramping: the service is
        taking requests again, so the breaker moves on now rather than after the whole answer (a streamed
        answer's headers come at once). An error later in that answer no longer moves the breaker; the next
        attempts' answers do."""
        if p.ticket.tracked:
            self.breaker.record(p.ticket, overloaded=False, target=self._target())

    def held(self, p: Pass) -> bool:
        """Whether the breaker let this attempt through while open or ramping (a probe, or one of the ramp's)."""
        return p.ticket.tracked

    def headers_observer(self, p: Pass) -> Callable[[RateLimitSnapshot], None] | None:
        """What learns a response's rate-limit headers the moment they arrive (a stream's first byte)."""
        if self.limiter is None:
            return None
        return functools.partial(self._headers_arrived, self.limiter, p.admitted_at)

    def _headers_arrived(self, limiter: LimiterLike, admitted_at: float, snapshot: RateLimitSnapshot) -> None:
        self.answered = True
        limiter.observe(snapshot, since=admitted_at)

    def _short_interval(self, p: Pass, snapshot: RateLimitSnapshot | None, message: str) -> bool:
        """A 429 while the headers said there was room: the limiter paces smoothly instead of a shared pause."""
        if self.limiter is None or p.permit is None:
            return False
        permit = p.permit
        return self.limiter.rate_limited(
            snapshot,
            permit.input_tokens,
            permit.output_tokens,
            message,
            admitted_at=p.admitted_at,
        )

    def _recall_stale(self) -> None:
        """The breaker just opened: attempts queued at the limiter since it was closed leave the queue at once
        (hundreds of gathered SDK calls would otherwise each take and return capacity before a probe can)."""
        for scope, ticket in self._at_limiter.items():
            if not self.breaker.current(ticket):
                scope.cancel()

    async def back_off(self, verdict: Verdict) -> None:
        """Sleep this item's own wait (0 when a shared pause is the wait). A wait after an overload ends early when
        the breaker changes state: it opened (the item waits for its probes instead) or closed."""
        if verdict.wait <= 0:
            return
        if verdict.decision.kind in _TURNED_AWAY:
            await self.breaker.hold(verdict.wait)
        else:
            await self._clock.sleep(verdict.wait)

    def _unreachable(self, outcome: Outcome, now: float) -> RetryDecision | None:
        """Connections that keep failing with no answer at all for `unreachable_after` seconds stop the run."""
        if outcome.kind != "connect":
            return None
        if self._failing_since is None:
            self._failing_since = now
        self._failing_count += 1
        persisted = now - self._failing_since >= self.retry.unreachable_after
        if self._gave_up or (persisted and self._failing_count >= _UNREACHABLE_AFTER_FAILURES):
            if not self._gave_up:
                self._gave_up = True
                # Waiters need not wait for probes: each fails at its first refused connection (fast), and the
                # first one that connects makes the host reachable again.
                self.breaker.reset()
            return RetryDecision(False, 0.0, "unreachable", "unreachable", abort_run=True)
        return None

    def _target(self) -> int:
        """The concurrency at which the breaker's ramp closes: with known limits, the cap (512) only bounds memory,
        so the ramp would never close; what the ceiling keeps in flight (Little's law: rate x latency) is the
        traffic the service carried before the overload, and twice that is back to normal."""
        if self.limiter is None:
            return 1
        cap = self.limiter.concurrency_limit()
        if self.breaker.closed:
            return cap
        rate, latency = (
            self.limiter.ceiling(),
            self.limiter.statistics().latency_estimate,
        )
        if rate is None or latency is None:
            return cap
        return max(2, min(cap, math.ceil(2.0 * rate * latency)))
