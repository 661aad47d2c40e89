"""The perfect client under reserved output accounting, as the emulator (and the API) charge it.

`runner.ideal_wall` charges each request the output tokens it produced. A server with reserved accounting
charges `max_tokens` at admission and refunds the unused part only when the answer ends, so even a client that
knows everything cannot keep more requests in flight than the bucket holds at `max_tokens` each. This simulates
that client: every request takes the average output and the average answer latency; each goes out the moment
the output bucket (capacity and refill as the emulator's, refunds at each answer's end) holds `max_tokens`.
"""

from __future__ import annotations

import heapq

from .scenarios import Scenario

__all__ = ["ideal_reserved"]


def ideal_reserved(scenario: Scenario, n: int, avg_out: float, latency: float) -> float:
    """Seconds until a perfect client has admitted `n` requests under reserved accounting (0 for produced)."""
    if scenario.output_accounting != "reserved" or n <= 0:
        return 0.0
    capacity = float(scenario.otpm)
    rate = capacity / scenario.minute
    reserve = float(scenario.max_tokens)
    refund = max(0.0, reserve - avg_out)
    level, now, admitted = capacity, 0.0, 0
    ends: list[float] = []  # when each request in flight ends and refunds `refund`
    while True:
        while ends and ends[0] <= now:
            heapq.heappop(ends)
            level = min(capacity, level + refund)
        if level >= reserve:
            level -= reserve
            admitted += 1
            if admitted == n:
                return now
            heapq.heappush(ends, now + latency)
            continue
        full_at = now + (reserve - level) / rate
        if ends and ends[0] < full_at:
            level = min(capacity, level + (ends[0] - now) * rate)
            now = ends[0]
        else:
            level, now = reserve, full_at  # exactly: the refill computed in floats may fall a hair short
