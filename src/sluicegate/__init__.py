"""sluicegate: run large numbers of LLM API requests at the full speed your rate limits allow."""

from __future__ import annotations

from importlib import metadata as _metadata

from ._clock import Clock, SystemClock
from ._config import Timeouts
from ._events import (
    AttemptFailed,
    CooldownStarted,
    Event,
    EventSink,
    LimitsObserved,
    RequestAdmitted,
    RequestCompleted,
    ResponseStarted,
    RunAborted,
)
from ._exceptions import (
    AttemptTimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ConnectFailedError,
    InputError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    RunAbortedError,
    ServerError,
    SharedLimitsUnavailableError,
    SluicegateError,
    TransportError,
    UnreachableError,
    UsageError,
)
from ._models import BucketView, ErrorInfo, RateLimitSnapshot, RequestItem, Result, Usage
from ._stats import EngineStatistics, LimiterStatistics
from ._sync import run
from .engine import Engine
from .limits.limiter import Limits
from .pricing import Price, PriceTable
from .retry import RetryPolicy

# One source of truth for the version: the installed distribution's metadata (pyproject.toml).
__version__ = _metadata.version("sluicegate")

__all__ = [
    "AttemptFailed",
    "AttemptTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BucketView",
    "BudgetExceededError",
    "Clock",
    "ConfigError",
    "ConnectFailedError",
    "CooldownStarted",
    "Engine",
    "EngineStatistics",
    "ErrorInfo",
    "Event",
    "EventSink",
    "InputError",
    "LimiterStatistics",
    "Limits",
    "LimitsObserved",
    "OverloadedError",
    "Price",
    "PriceTable",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitSnapshot",
    "RateLimitedError",
    "RequestAdmitted",
    "RequestCompleted",
    "RequestItem",
    "ResponseStarted",
    "Result",
    "RetryPolicy",
    "RunAborted",
    "RunAbortedError",
    "ServerError",
    "SharedLimitsUnavailableError",
    "SluicegateError",
    "SystemClock",
    "Timeouts",
    "TransportError",
    "UnreachableError",
    "Usage",
    "UsageError",
    "__version__",
    "run",
]
