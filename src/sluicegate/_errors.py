"""The one table of error kinds: for each, whether it is retried, its API error type and its exception class.

A failure is given its kind once, where it happens (a status and error body, or a transport exception); every
later step (the retry decision, the recorded ErrorInfo, the exception `create()` raises, the counters) looks the
kind up here instead of translating it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._exceptions import (
    AttemptTimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConnectFailedError,
    OverloadedError,
    QuotaExceededError,
    RateLimitedError,
    RunAbortedError,
    ServerError,
    SluicegateError,
    TransportError,
    UnreachableError,
)

__all__ = ["ERROR_KINDS", "ErrorKind", "KindSpec"]

ErrorKind = Literal[
    "invalid_request",  # bad input line or params; nothing was sent (or the API said 400/404/413/422)
    "authentication",  # 401/403
    "rate_limited",  # 429s until attempts or deadline ran out
    "quota_exceeded",  # spend cap / insufficient quota
    "overloaded",  # 529s until attempts ran out
    "server",  # 5xx (and 408/409) until attempts ran out
    "connect",  # the connection could not be opened (refused, name not resolved) until attempts ran out
    "timeout",  # an attempt passed its connect, idle or total timeout until attempts ran out
    "transport",  # the connection broke mid-answer, or the answer was cut short, until attempts ran out
    "unreachable",  # the host could not be reached for long enough that the whole run stopped
    "budget_exceeded",  # not sent: the cost cap would have been passed
    "aborted",  # not sent or not finished: the run stopped (bad key, fail-fast, shutdown)
]


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What one kind of failure means.

    `retryable`: another attempt may succeed. `stops_run`: the failure holds for every item (a bad key, an empty
    account, a host that cannot be reached), so the run stops. `counted`: the server may have counted the attempt
    against the rate limits (a 429 or a refused connection was not), so its reservation stays charged.
    """

    retryable: bool
    api_type: str
    exception: type[SluicegateError]
    counted: bool = True
    stops_run: bool = False


ERROR_KINDS: dict[ErrorKind, KindSpec] = {
    "invalid_request": KindSpec(False, "invalid_request_error", BadRequestError),
    "authentication": KindSpec(False, "authentication_error", AuthenticationError, counted=False, stops_run=True),
    "quota_exceeded": KindSpec(False, "rate_limit_error", QuotaExceededError, counted=False, stops_run=True),
    "rate_limited": KindSpec(True, "rate_limit_error", RateLimitedError, counted=False),
    # An overloaded service turns the request away at the door, before its rate limiter (so does the emulator);
    # if a server did count it, the next response's `remaining` pulls the limiter down anyway.
    "overloaded": KindSpec(True, "overloaded_error", OverloadedError, counted=False),
    "server": KindSpec(True, "api_error", ServerError),
    "connect": KindSpec(True, "api_error", ConnectFailedError, counted=False),
    "timeout": KindSpec(True, "api_error", AttemptTimeoutError),
    "transport": KindSpec(True, "api_error", TransportError),
    "unreachable": KindSpec(False, "api_error", UnreachableError, counted=False, stops_run=True),
    "budget_exceeded": KindSpec(False, "budget_exceeded", BudgetExceededError, counted=False),
    "aborted": KindSpec(False, "aborted", RunAbortedError, counted=False),
}
