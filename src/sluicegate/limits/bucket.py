"""A pure, continuously refilled token bucket; time is passed in, never read.

Shared by the emulator (the server's buckets) and the engine's limiter (the client's model of them).
The level may go negative: a debt taken by a reservation or a late charge that must be paid back by refill
before anything else is admitted. That is how "count produced output tokens after the fact" works.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """Capacity `capacity`, refilled at `capacity / period` tokens per second, starting full or empty."""

    __slots__ = ("_level", "_updated", "capacity", "rate")

    def __init__(self, capacity: float, *, period: float = 60.0, now: float, initial: float | None = None) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be positive")
        self.capacity = float(capacity)
        self.rate = self.capacity / period
        self._level = self.capacity if initial is None else float(initial)
        self._updated = now

    def level(self, now: float) -> float:
        """Tokens available at `now` (negative while in debt)."""
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
            self._updated = now
        return self._level

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are available (0 if they are now).

        An amount larger than the capacity can never be held at once; it is admitted when the bucket is full,
        driving it into debt, so one oversized request does not wait forever.
        """
        need = min(amount, self.capacity) - self.level(now)
        return 0.0 if need <= 0 else need / self.rate

    def try_take(self, amount: float, now: float) -> bool:
        """Take `amount` if available now; otherwise change nothing."""
        if self.wait_time(amount, now) > 0:
            return False
        self._level -= amount
        return True

    def take(self, amount: float, now: float) -> None:
        """Take `amount` unconditionally (may go into debt)."""
        self.level(now)
        self._level -= amount

    def refund(self, amount: float, now: float) -> None:
        """Give back part of an earlier reservation (never above capacity)."""
        self._level = min(self.capacity, self.level(now) + amount)

    def set_level(self, level: float, now: float) -> None:
        self.level(now)
        self._level = min(self.capacity, level)

    def resize(self, capacity: float, *, period: float = 60.0, now: float) -> None:
        """Change the capacity, keeping the tokens already spent spent."""
        spent = self.capacity - self.level(now)
        self.capacity = float(capacity)
        self.rate = self.capacity / period
        self._level = self.capacity - spent

    def full_in(self, now: float) -> float:
        """Seconds until the bucket is fully replenished (what Anthropic's `*-reset` headers report)."""
        missing = self.capacity - self.level(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def __repr__(self) -> str:
        return f"TokenBucket(capacity={self.capacity:g}, rate={self.rate:g}/s, level={self._level:g})"


def ceil_seconds(seconds: float) -> int:
    """Whole seconds, rounded up (retry-after is an integer and must never be too early)."""
    return max(0, math.ceil(seconds - 1e-9))
