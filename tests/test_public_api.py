"""The public surface is deliberate: this pins what `import sluicegate` exports."""

from __future__ import annotations

import sluicegate

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
    "Limiter",
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
    "Result",
    "RetryPolicy",
    "RunAborted",
    "RunAbortedError",
    "ServerError",
    "SluicegateError",
    "SystemClock",
    "TextStream",
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


def test_the_error_tree() -> None:
    """Every error is a SluicegateError; quota is a rate limit; budget is an abort; usage is a RuntimeError."""
    assert issubclass(sluicegate.QuotaExceededError, sluicegate.RateLimitedError)
    assert issubclass(sluicegate.BudgetExceededError, sluicegate.RunAbortedError)
    assert issubclass(sluicegate.UsageError, RuntimeError)
    assert issubclass(sluicegate.ConfigError, ValueError)
    for name in ("ProviderError", "TransportError", "RunAbortedError", "InputError", "ConfigError", "UsageError"):
        assert issubclass(getattr(sluicegate, name), sluicegate.SluicegateError)
