"""The server's token bucket, written from the rate-limit docs; it shares no code with the client's limiter.

Anthropic: "token bucket ... capacity is continuously replenished up to your maximum limit, rather than being
reset at fixed intervals"; a `*-reset` header is when the bucket is fully replenished; `retry-after` is the whole
seconds until the bucket holds enough for the request. The emulator is the independent check of the client's model
of the server, so this file is deliberately its own: a bug in one bucket must not hide the same bug in the other.
"""

from __future__ import annotations

import math

__all__ = ["Bucket", "retry_after"]


class Bucket:
    """`capacity` tokens refilled continuously at `capacity / period` per second, never above `capacity`.

    The balance may fall below zero: output tokens counted as they are produced are charged after the request was
    admitted, and that debt is paid back by refill before the next request fits. Time (`now`, seconds) is always
    passed in, so the emulator decides which clock it serves.
    """

    __slots__ = ("_at", "_tokens", "capacity", "rate")

    def __init__(self, capacity: float, *, period: float, now: float) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("capacity and period must be positive")
        self.capacity = float(capacity)
        self.rate = self.capacity / period  # tokens per second
        self._tokens = self.capacity  # a fresh account starts with full buckets
        self._at = now

    def level(self, now: float) -> float:
        """The balance at `now` (negative while in debt)."""
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
        return self._tokens

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until `amount` fits (0 when it fits now).

        A request larger than the whole capacity is let in once the bucket is full, going into debt; otherwise
        it could never be served at all.
        """
        short = min(amount, self.capacity) - self.level(now)
        return short / self.rate if short > 0 else 0.0

    def take(self, amount: float, now: float) -> None:
        """Charge `amount`, into debt if need be (the caller checked `wait_time` first where it must)."""
        self._tokens = self.level(now) - amount

    def refund(self, amount: float, now: float) -> None:
        """Give back the unused part of an up-front charge, never above capacity."""
        self._tokens = min(self.capacity, self.level(now) + amount)

    def full_in(self, now: float) -> float:
        """Seconds until fully replenished: what a `*-reset` header reports."""
        missing = self.capacity - self.level(now)
        return missing / self.rate if missing > 0 else 0.0


def retry_after(wait: float) -> int:
    """The integer `retry-after` for a wait of `wait` seconds: rounded up (never too early), at least 1."""
    return max(1, math.ceil(wait - 1e-9))
