"""What the limiter learns from answers themselves: latency, average usage, and AIMD concurrency without limits."""

from __future__ import annotations

import math

__all__ = ["Adaptive"]

_UNKNOWN_START = 4  # concurrency after the first response when no limit is known (then AIMD)


class Adaptive:
    """Exponentially weighted latency and usage, and an AIMD concurrency limit for servers without headers."""

    __slots__ = ("_best_cost", "_cost_ewma", "_last_decrease", "_slow_start", "avg_in", "avg_out", "latency", "limit")

    def __init__(self) -> None:
        self.limit = float(_UNKNOWN_START)
        self.latency: float | None = None
        self.avg_in: float | None = None
        self.avg_out: float | None = None
        self._slow_start = True
        self._best_cost: float | None = None
        self._cost_ewma: float | None = None
        self._last_decrease = -math.inf

    def learn(self, latency: float, input_tokens: int, output_tokens: int, now: float) -> None:
        """One successful answer: `latency` seconds, this usage."""
        # Exponentially weighted averages: recent behaviour matters, one outlier does not dominate.
        alpha = 0.1
        self.latency = latency if self.latency is None else self.latency + alpha * (latency - self.latency)
        self.avg_in = input_tokens if self.avg_in is None else self.avg_in + alpha * (input_tokens - self.avg_in)
        self.avg_out = output_tokens if self.avg_out is None else self.avg_out + alpha * (output_tokens - self.avg_out)
        # Without headers, latency is the only sign of a server queueing our requests (a local vLLM never says
        # 429): seconds per output token, against the best seen (slowly forgotten). Twice the best means more
        # concurrency only lengthens the queue: AIMD stops increasing, and decreases by a quarter at most once
        # per round trip while it stays there.
        cost = latency / (output_tokens + 20)
        self._best_cost = cost if self._best_cost is None else min(self._best_cost * 1.001, cost)
        # A quicker average than the others: slow start doubles per round trip, so a late signal overshoots.
        self._cost_ewma = cost if self._cost_ewma is None else self._cost_ewma + 0.3 * (cost - self._cost_ewma)
        if self._cost_ewma > 2.0 * self._best_cost:
            self._slow_start = False
            if now - self._last_decrease >= latency:
                self.limit = max(1.0, self.limit * 0.75)
                self._last_decrease = now
            return
        # AIMD additive increase: exponential (slow start) until the first overload, then one per window.
        self.limit += 1.0 if self._slow_start else 1.0 / max(1.0, self.limit)

    def decrease(self) -> None:
        """A 429 or an overload: multiplicative decrease."""
        self._slow_start = False
        self.limit = max(1.0, self.limit / 2)
