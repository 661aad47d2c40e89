"""The limiter's interface, with two homes: in-process buckets (`Limiter`) or a shared pool on Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .._models import RateLimitSnapshot, Usage
from .._stats import LimiterStatistics

__all__ = ["AdmissionPermit", "LimiterLike"]


class AdmissionPermit(Protocol):
    """One admitted attempt: its concurrency slot and the tokens reserved for it."""

    input_tokens: int
    output_tokens: int
    admitted_at: float

    def settle(self, usage: Usage) -> None:
        """Success: charge what the server counted, refund the rest, free the slot."""

    def release(self, *, charged: bool = False) -> None:
        """Failure without usage: free the slot; `charged` keeps the request and input tokens spent."""


class LimiterLike(Protocol):
    """What the engine and the SDK transport need of a limiter, wherever its state lives."""

    async def acquire(
        self, input_tokens: int, output_tokens: int, *, estimate: Callable[[], int] | None = None
    ) -> AdmissionPermit:
        """Wait until a slot and the tokens are available (first come, first served), then take them.

        `estimate` (the input tokens, asked again when admission is decided) makes the charge the estimator's
        view at admission: requests queued before the first answer calibrated it are charged the calibrated
        count, not the guess made when they queued."""

    def observe(self, snapshot: RateLimitSnapshot, now: float | None = None, *, since: float | None = None) -> None:
        """Learn limits and windows from a response's rate-limit headers (`since`: when its request was admitted)."""

    def rate_limited(
        self,
        snapshot: RateLimitSnapshot | None,
        input_tokens: int,
        output_tokens: int,
        message: str = "",
        *,
        admitted_at: float | None = None,
    ) -> bool:
        """A 429: True when the limiter handles it by pacing (a short-interval limit), False for `cool_down`."""

    def cool_down(self, seconds: float) -> None:
        """A 429: nobody is admitted for `seconds`."""

    def overloaded(self) -> None:
        """A 529/503 or similar: decrease the adaptive concurrency."""

    def saw_response(self) -> None:
        """Any response ends the single-request probe."""

    @property
    def cooldown_until(self) -> float:
        """When the current 429 pause ends, on the limiter's clock."""

    def concurrency_limit(self) -> int:
        """Requests this process may have in flight now."""

    def ceiling(self) -> float | None:
        """Requests per second the known limits allow (None when no limit is known yet)."""

    def statistics(self) -> LimiterStatistics:
        """A frozen snapshot for progress displays."""
