"""Frozen statistics snapshots of the limiter and the engine, for progress displays and reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._models import Usage

__all__ = ["Binding", "Counters", "EngineStatistics", "LimiterStatistics"]

# "shared_limits_lost": the shared limiter's Redis does not answer, so nothing is admitted until it does.
Binding = Literal[
    "requests", "input_tokens", "output_tokens", "tokens", "concurrency", "cooldown", "shared_limits_lost"
]


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    """What the limiter knows and does right now.

    Limits are per real minute (an emulator in compressed time reports per emulated minute; these are scaled);
    None means not known yet (neither given nor learnt from headers).
    `binding` names the gate the oldest waiter is waiting for (None when nobody waits).
    """

    in_flight: int = 0
    concurrency_limit: int = 0
    waiting: int = 0
    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    tokens_per_minute: float | None = None
    binding: Binding | None = None
    cooldown_remaining: float = 0.0  # seconds until a 429 pause ends (0 when none)
    latency_estimate: float | None = None  # smoothed seconds per attempt, used for Little's law
    # Each known bucket's size: its limit per window, what the server holds when full (a perfect client starts
    # by spending it, then goes at the per-minute rate above).
    buckets: Mapping[Binding, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """Counts and totals since the engine opened. `elapsed` is clock seconds since then."""

    elapsed: float = 0.0
    submitted: int = 0  # items taken from the input
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0  # spent, from real usage, over the successes whose model has a price
    reserved_cost: float = 0.0  # estimated cost of what is in flight now
    unpriced: Mapping[str, int] = field(default_factory=dict)  # successes by model with no price: cost unknown
    attempts: int = 0  # attempts sent, including retries
    failures_by_reason: Mapping[str, int] = field(default_factory=dict)  # failed attempts by reason
    limiter: LimiterStatistics = field(default_factory=LimiterStatistics)

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed


class Counters:
    """The engine's running tallies of items; `EngineStatistics` is their frozen snapshot."""

    __slots__ = ("failed", "in_flight", "submitted", "succeeded", "usage")

    def __init__(self) -> None:
        self.submitted = 0
        self.succeeded = 0
        self.failed = 0
        self.in_flight = 0
        self.usage = Usage()

    def success(self, usage: Usage) -> None:
        self.succeeded += 1
        self.usage = self.usage + usage
