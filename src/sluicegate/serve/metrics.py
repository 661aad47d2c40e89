"""What the gateway has done: requests by client and status, tokens, cost, budgets, and the rate of answers.

One `Ledger` per gateway, written by the request path and read by /metrics and the dashboard. It holds client
names, never keys.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

from .._models import RateLimitSnapshot, Usage

__all__ = ["ClientUsage", "Ledger"]


@dataclass(slots=True)
class ClientUsage:
    """One client's totals since the gateway started."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0  # answered with an error status (upstream's final error or the gateway's own)
    disconnected: int = 0  # the client went away before its answer was complete
    in_flight: int = 0  # sent upstream and not finished
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    reserved: float = 0.0  # worst-case cost of this client's requests in flight (for budgets)
    budget: float | None = None
    unpriced: int = 0  # answers whose model has no price: their cost is unknown, not zero


@dataclass(slots=True)
class Ledger:
    """Counters for the whole gateway; cheap to update on every request."""

    started: float
    clients: dict[str, ClientUsage] = field(default_factory=dict)
    by_status: Counter[tuple[str, int]] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # the gateway's own answers: deadline, queue_full, ...
    last_limits: RateLimitSnapshot | None = None
    _answers: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def client(self, name: str, budget: float | None = None) -> ClientUsage:
        usage = self.clients.get(name)
        if usage is None:
            usage = self.clients[name] = ClientUsage(budget=budget)
        return usage

    def started_request(self, name: str, budget: float | None = None) -> ClientUsage:
        usage = self.client(name, budget)
        usage.requests += 1
        return usage

    def answered(self, name: str, status: int, now: float) -> None:
        """A response status went to the client (the gateway's own or the upstream's)."""
        self.by_status[(name, status)] += 1
        usage = self.client(name)
        if 200 <= status < 300:
            usage.succeeded += 1
        elif status != 499:  # a client that went away is counted as disconnected, not as an error it saw
            usage.failed += 1
        self._answers.append(now)

    def used(self, name: str, usage: Usage, cost: float | None) -> None:
        """Tokens an upstream request consumed (measured, or estimated when the client went away early)."""
        client = self.client(name)
        client.input_tokens += usage.total_input_tokens
        client.output_tokens += usage.output_tokens
        if cost is None:
            client.unpriced += 1
        else:
            client.cost += cost

    def rate(self, now: float, window: float = 10.0) -> float:
        """Answers per second over the last `window` seconds."""
        cutoff = now - window
        answers = self._answers
        while answers and answers[0] < cutoff - 60.0:  # keep a minute of history, drop the rest
            answers.popleft()
        recent = sum(1 for at in reversed(answers) if at >= cutoff) if answers else 0
        span = min(window, max(1e-9, now - self.started))
        return recent / span if span > 0 else 0.0

    def series(self, now: float, seconds: int = 60) -> list[int]:
        """Answers per second for each of the last `seconds` whole seconds, oldest first."""
        counts = [0] * seconds
        for at in self._answers:
            age = now - at
            if 0 <= age < seconds:
                counts[seconds - 1 - math.floor(age)] += 1
        return counts

    @property
    def total_cost(self) -> float:
        return sum(c.cost for c in self.clients.values())

    @property
    def total_reserved(self) -> float:
        return sum(c.reserved for c in self.clients.values())
