"""The whole sluicegate error tree.

SluicegateError
├── ConfigError                 bad configuration given to the library or CLI (ValueError too)
│   ├── JobMismatchError        the job store was made with other settings, or the input changed
│   ├── JobBusyError            another run holds the job store
│   └── SharedLimitsUnavailableError  the shared limiter's Redis cannot be reached at start
├── InputError                  a bad input line or request: carries line and field
├── ProviderError               the API answered with an error: status, request id, type, body
│   ├── BadRequestError         400, 404, 413, 422: never retried
│   │   └── BatchRejectedError  a Message Batches call refused with a final 4xx
│   ├── AuthenticationError     401, 403: stops the whole run
│   ├── RateLimitedError        429: carries retry_after
│   │   └── QuotaExceededError  spend cap / insufficient quota: stops the whole run
│   ├── OverloadedError         529
│   └── ServerError             5xx
├── TransportError              connection refused/reset, timeouts, truncated streams
│   ├── ConnectFailedError      the connection could not be opened (refused, name not resolved)
│   ├── UnreachableError        the host stayed unreachable long enough that the run stopped
│   └── AttemptTimeoutError
├── RunAbortedError             the run stopped early (bad key, spend cap, budget, fail-fast)
│   ├── BudgetExceededError     admission would pass the cost cap
│   └── BatchApiError           a Message Batches call failed for good (bad key, retries exhausted)
└── UsageError                  misuse of the API (RuntimeError too): e.g. an engine used after close
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AttemptTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchApiError",
    "BatchRejectedError",
    "BudgetExceededError",
    "ConfigError",
    "ConnectFailedError",
    "InputError",
    "JobBusyError",
    "JobMismatchError",
    "OverloadedError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitedError",
    "RunAbortedError",
    "ServerError",
    "SharedLimitsUnavailableError",
    "SluicegateError",
    "TransportError",
    "UnreachableError",
    "UsageError",
]


class SluicegateError(Exception):
    """Root of every error sluicegate raises on purpose."""


class ConfigError(SluicegateError, ValueError):
    """Configuration that cannot work (negative limits, unknown provider, missing key)."""


class JobMismatchError(ConfigError):
    """The store belongs to a job with other settings (or the input changed); start over to discard it.

    `changes` maps each differing setting to its (stored, given) values, for messages that name them.
    """

    def __init__(self, message: str, changes: Mapping[str, tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.changes: dict[str, tuple[str, str]] = dict(changes or {})


class JobBusyError(ConfigError):
    """Another run holds this job store."""


class SharedLimitsUnavailableError(ConfigError):
    """The shared limiter's Redis cannot be reached when the engine opens (the CLI exits with 2)."""


class InputError(SluicegateError, ValueError):
    """A bad input line or request; names the line (1-based, when read from a file) and the field."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.detail = message


class ProviderError(SluicegateError):
    """The API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.body = body


class BadRequestError(ProviderError):
    """400/404/413/422: the request itself is wrong; retrying cannot help."""


class BatchRejectedError(BadRequestError):
    """The Message Batches API refused a call with a final 4xx (400, 404, 413, ...): nothing to retry."""


class AuthenticationError(ProviderError):
    """401/403: the key is wrong or lacks permission; the whole run stops."""


class RateLimitedError(ProviderError):
    """429 with a retry-after: wait and try again."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceededError(RateLimitedError):
    """A 429 that no wait can fix (spend cap reached, insufficient quota): the whole run stops."""


class OverloadedError(ProviderError):
    """529: the service is overloaded; retried with backoff."""


class ServerError(ProviderError):
    """5xx other than 529; retried with backoff."""


class TransportError(SluicegateError):
    """No usable HTTP response: connection refused or reset, timeout, or a stream cut short."""


class ConnectFailedError(TransportError):
    """The connection could not be opened: refused, or the host name did not resolve."""


class UnreachableError(TransportError):
    """Every connection failed for long enough (no name resolution, refused) that the whole run stopped."""


class AttemptTimeoutError(TransportError):
    """An attempt passed its connect, idle or total timeout."""


class RunAbortedError(SluicegateError):
    """The run stopped before every item was tried: the reason is in the message."""


class BudgetExceededError(RunAbortedError):
    """Admitting more work could pass the cost cap."""


class BatchApiError(RunAbortedError):
    """A batch call failed for good (a bad key, or transient errors past the retry policy): the run stops."""


class UsageError(SluicegateError, RuntimeError):
    """The library was used wrongly (for example an engine used outside its `async with`)."""
