"""Events the engine emits to sinks (progress display, logs, metrics). The engine itself never prints.

A sink is any callable taking one event; it is called synchronously on the event loop, so it must be cheap
and must not raise (an exception from a sink is logged and the sink is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._models import RateLimitSnapshot, Result

__all__ = [
    "AttemptFailed",
    "CooldownStarted",
    "Event",
    "EventSink",
    "LimitsObserved",
    "RequestAdmitted",
    "RequestCompleted",
    "ResponseStarted",
    "RunAborted",
]


@dataclass(frozen=True, slots=True)
class RequestAdmitted:
    """The limiter let an attempt go out."""

    at: float
    index: int
    custom_id: str
    attempt: int  # 1-based
    input_tokens_estimate: int
    output_tokens_reserved: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """One attempt failed; `will_retry` tells whether another follows and `delay` how long until it may."""

    at: float
    index: int
    custom_id: str
    attempt: int
    reason: str  # "rate_limited", "overloaded", "server", "transport", "timeout", "truncated", "invalid_request", ...
    status: int | None
    will_retry: bool
    delay: float | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """An attempt's answer began: a stream's first event, or an unstreamed answer's arrival. A prompt-cache entry
    the request writes is readable by others from here on (what cache warm-up waits for)."""

    at: float
    index: int
    custom_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """An item reached its final result (success or error)."""

    at: float
    result: Result


@dataclass(frozen=True, slots=True)
class LimitsObserved:
    """A response carried rate-limit headers; `snapshot` is the server's view."""

    at: float
    snapshot: RateLimitSnapshot


@dataclass(frozen=True, slots=True)
class CooldownStarted:
    """A 429 paused admission for everyone until `until` (clock seconds)."""

    at: float
    until: float


@dataclass(frozen=True, slots=True)
class RunAborted:
    """The run stops early (bad key, spend cap, budget, fail-fast): nothing more is admitted."""

    at: float
    reason: str


Event = (
    RequestAdmitted | ResponseStarted | AttemptFailed | RequestCompleted | LimitsObserved | CooldownStarted | RunAborted
)
EventSink = Callable[[Event], None]
