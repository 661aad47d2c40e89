"""The public surface is deliberate: this pins what `import sluicegate` exports."""

from __future__ import annotations

import re

import pytest

import sluicegate
from sluicegate import _exceptions
from sluicegate.jobs import Defaults, JobBusyError, JobMismatchError, read_requests
from sluicegate.jobs.batch_api import BatchApiError, BatchRejectedError
from sluicegate.providers import get as get_provider

EXPECTED = {
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
}


def test_public_names_are_exactly_the_documented_ones() -> None:
    """__all__ lists exactly the public names, and each one resolves."""
    assert set(sluicegate.__all__) == EXPECTED
    for name in sluicegate.__all__:
        assert getattr(sluicegate, name) is not None


def test_internals_are_not_exported() -> None:
    """The limiter is internal and a TextStream only comes from Engine.stream(): neither is a public name."""
    assert not hasattr(sluicegate, "Limiter")
    assert not hasattr(sluicegate, "TextStream")


def test_every_error_class_is_in_the_drawn_tree() -> None:
    """Each error class of _exceptions appears in the tree its docstring draws, and derives from SluicegateError."""
    tree = _exceptions.__doc__ or ""
    for name in _exceptions.__all__:
        error = getattr(_exceptions, name)
        assert issubclass(error, sluicegate.SluicegateError)
        assert re.search(rf"^[│ ]*(?:[├└]── )?{name}\b", tree, re.MULTILINE), name


def test_job_and_batch_errors_sit_in_the_tree() -> None:
    """The job store's and the batch client's errors are branches of the one tree, importable where they are raised."""
    assert issubclass(JobMismatchError, sluicegate.ConfigError)
    assert issubclass(JobBusyError, sluicegate.ConfigError)
    assert issubclass(BatchRejectedError, sluicegate.BadRequestError)
    assert issubclass(BatchApiError, sluicegate.RunAbortedError)


def test_an_unknown_provider_is_a_config_error_everywhere() -> None:
    """The engine's provider lookup and the input reader refuse an unknown provider with the same ConfigError."""
    with pytest.raises(sluicegate.ConfigError, match="unknown provider 'gemini'"):
        get_provider("gemini")
    with pytest.raises(sluicegate.ConfigError, match="unknown provider 'gemini'"):
        next(read_requests(["{}"], defaults=Defaults(), provider="gemini"))  # type: ignore[arg-type]


def test_the_error_tree() -> None:
    """Every error is a SluicegateError; quota is a rate limit; budget is an abort; usage is a RuntimeError."""
    assert issubclass(sluicegate.QuotaExceededError, sluicegate.RateLimitedError)
    assert issubclass(sluicegate.BudgetExceededError, sluicegate.RunAbortedError)
    assert issubclass(sluicegate.UsageError, RuntimeError)
    assert issubclass(sluicegate.ConfigError, ValueError)
    for name in ("ProviderError", "TransportError", "RunAbortedError", "InputError", "ConfigError", "UsageError"):
        assert issubclass(getattr(sluicegate, name), sluicegate.SluicegateError)
