"""The retry decision: pure, table-tested, with the official SDKs' rules and a run-wide stop for bad keys.

Given what happened to one attempt, `decide` says whether to try again, after how long, and whether the
whole run must stop. The engine owns the loop; nothing here sleeps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from ._errors import ERROR_KINDS, ErrorKind
from ._exceptions import ConfigError

__all__ = ["Outcome", "RetryDecision", "RetryPolicy", "backoff", "decide"]

_QUOTA_CODES = frozenset({"enforced_spend_limit_reached", "insufficient_quota", "billing_error"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard to try one item.

    Backoff is exponential with full jitter: the n-th retry waits `uniform(0, min(max_delay, initial_delay *
    2 ** (n - 1)))` seconds, unless the server said how long (`retry-after-ms` / `retry-after`), which wins.
    A server wait above `max_retry_after` fails the item instead of parking it for hours. When every connection
    fails (a name that does not resolve, a refused port) with no answer at all for `unreachable_after` seconds,
    the whole run stops with one error instead of spending every item's attempts.

    The `breaker_*` settings shape the circuit breaker every attempt of one client shares (`_breaker.Breaker`): it
    trips when at least `breaker_min_failures` of the last `breaker_window` answers, and at least
    `breaker_trip_ratio` of them, were overloaded (529, or a refused connection); while tripped only one probe goes
    out every `breaker_probe_interval` seconds, doubled after each failed probe up to `breaker_max_probe_interval`.
    """

    max_attempts: int = 10
    initial_delay: float = 0.5
    max_delay: float = 20.0  # the SDKs stop at 8 s; 20 s lets 10 attempts ride out about a minute of overload
    max_retry_after: float = 900.0
    deadline: float | None = None  # seconds from an item's first attempt; None = no deadline
    unreachable_after: float = 10.0
    breaker_window: int = 20
    breaker_min_failures: int = 8
    breaker_trip_ratio: float = 0.5
    breaker_probe_interval: float = 0.5
    breaker_max_probe_interval: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError("max_attempts must be an integer of at least 1")
        for name in ("initial_delay", "max_delay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number of seconds, not negative")
        # inf is a meaningful "no limit" for these two; NaN never is.
        if math.isnan(self.max_retry_after) or self.max_retry_after < 0:
            raise ConfigError("max_retry_after must not be negative")
        if math.isnan(self.unreachable_after) or self.unreachable_after < 0:
            raise ConfigError("unreachable_after must not be negative")
        if self.deadline is not None and (math.isnan(self.deadline) or self.deadline <= 0):
            raise ConfigError("deadline must be positive (or None for no deadline)")
        for name in ("breaker_window", "breaker_min_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer of at least 1")
        if self.breaker_min_failures > self.breaker_window:
            raise ConfigError("breaker_min_failures cannot exceed breaker_window (the breaker could never trip)")
        if not 0 < self.breaker_trip_ratio <= 1:  # also refuses NaN
            raise ConfigError("breaker_trip_ratio must be above 0 and at most 1")
        for name in ("breaker_probe_interval", "breaker_max_probe_interval"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive, finite number of seconds")
        if self.breaker_max_probe_interval < self.breaker_probe_interval:
            raise ConfigError("breaker_max_probe_interval must not be below breaker_probe_interval")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one failed attempt, as plain data, classified once into its kind at construction.

    `kind` is the row of the one error table (`_errors.ERROR_KINDS`) every later step looks up; `reason` is the
    same or a finer name for counters and messages ("request_timeout" for a 408, "truncated" for a cut answer).
    """

    failure: Literal["status", "connect", "transport", "timeout", "truncated"] = "status"
    status: int | None = None
    error_type: str | None = None  # Anthropic error.type / OpenAI error.type
    error_code: str | None = None  # Anthropic error.details.error_code / OpenAI error.code
    should_retry: bool | None = None  # the x-should-retry header
    retry_after: float | None = None  # seconds
    elapsed: float = 0.0  # since the item's first attempt
    kind: ErrorKind = field(init=False)
    reason: str = field(init=False)

    def __post_init__(self) -> None:
        reason, kind = _classify(self)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to try again and after how long, plus what to record and whom else it concerns.

    `reason` names the failure ("rate_limited", "server", "connect", ...) when retrying or when the failure itself
    is final (4xx, x-should-retry: false), and why the engine gave up when it could have retried
    ("attempts_exhausted", "deadline_exceeded", "retry_after_too_long"); `kind` always says what failed.
    `delay` is 0.0 when not retrying.
    """

    retry: bool
    delay: float
    reason: str
    kind: ErrorKind  # what to record if this failure is final
    abort_run: bool = False  # the whole run must stop (bad key, spend cap)
    cooldown: bool = False  # a rate-limit 429: pause admission for everyone for `delay`


_TRANSPORT_KINDS: dict[str, tuple[str, ErrorKind]] = {
    "connect": ("connect", "connect"),
    "timeout": ("timeout", "timeout"),
    "transport": ("transport", "transport"),
    "truncated": ("truncated", "transport"),
}


def _classify(outcome: Outcome) -> tuple[str, ErrorKind]:
    """The one translation of a status and error body (or a transport failure) into a kind of the table."""
    if outcome.failure != "status":
        return _TRANSPORT_KINDS[outcome.failure]
    status = outcome.status or 0
    if status in (401, 403):
        return "authentication", "authentication"
    if status == 402 or (status == 429 and {outcome.error_code, outcome.error_type} & _QUOTA_CODES):
        return "quota_exceeded", "quota_exceeded"
    if status == 429:
        return "rate_limited", "rate_limited"
    if status == 529 or outcome.error_type == "overloaded_error":
        return "overloaded", "overloaded"
    if status == 408:
        return "request_timeout", "server"
    if status == 409:
        return "conflict", "server"
    if status >= 500:
        return "server", "server"
    return "invalid_request", "invalid_request"


def decide(policy: RetryPolicy, outcome: Outcome, attempt: int, rng: random.Random) -> RetryDecision:
    """Retry or give up after attempt number `attempt` (1-based) failed with `outcome`."""
    kind, reason = outcome.kind, outcome.reason
    spec = ERROR_KINDS[kind]
    if spec.stops_run:
        return RetryDecision(False, 0.0, reason, kind, abort_run=True)
    if not spec.retryable:
        return RetryDecision(False, 0.0, reason, kind)
    if outcome.should_retry is False:
        return RetryDecision(False, 0.0, reason, kind)
    cooldown = kind == "rate_limited"
    if outcome.retry_after is not None and outcome.retry_after >= 0:
        delay = outcome.retry_after
        if attempt < policy.max_attempts and delay > policy.max_retry_after:
            return RetryDecision(False, 0.0, "retry_after_too_long", kind)
    else:
        delay = backoff(policy, attempt, rng)
    if attempt >= policy.max_attempts:
        give_up = "attempts_exhausted"
    elif policy.deadline is not None and outcome.elapsed + delay > policy.deadline:
        give_up = "deadline_exceeded"
    else:
        return RetryDecision(True, delay, reason, kind, cooldown=cooldown)
    return RetryDecision(False, 0.0, give_up, kind)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff after the `attempt`-th failure: uniform(0, min(max, initial * 2**(n-1)))."""
    return rng.uniform(0.0, min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1)))
