"""Recovery from a scheduled all-529 window, from what the emulator recorded (issue 12's overload figures).

The emulator counts the requests that arrived in each second and logs every generation answer's time and status,
all on its own clock, on which the fault window is scheduled. From those, for one run:

- `window_requests` / `window_per_second`: requests that arrived during the window [start, end);
- `first_ok_s`: from the window's end to the first 200 answered after it;
- `steady_s`: from the window's end to the first completion that opens a one-second span of at least 90% of the
  steady ceiling's completions;
- `end_s`: from the window's end to the run's last answer;
- `best_s`: what a perfect client needs, from the window's end, for the documents not done by then (n minus the
  200s answered before the end): every bucket full at the window's end (faults are chosen before admission, so
  nothing is charged during the window, and a window of at least a minute refills every bucket; for a shorter
  window, full buckets are the conservative assumption: the perfect client is credited with the most it could
  have), then each limit's refill rate, the slowest limit binding; `best_latency_s` adds one average answer,
  which even the perfect client waits for its last request;
- `of_best` = best_s / end_s and `of_best_latency` = best_latency_s / end_s: "of the best possible counted from
  the end of the window".
"""

from __future__ import annotations

from typing import Any

from sluicegate.emulator import FaultSpec

__all__ = ["after_window", "overload_window"]

_STEADY_SHARE = 0.9


def overload_window(faults: tuple[FaultSpec, ...]) -> tuple[float, float] | None:
    """The first scheduled all-529 window [start, end) of a fault list, if any."""
    for spec in faults:
        if spec.kind == "overloaded" and spec.start is not None and spec.end is not None:
            return spec.start, spec.end
    return None


def after_window(
    window: tuple[float, float],
    stats: dict[str, Any],
    *,
    documents: int,
    limits: tuple[float, float, float],  # requests, input tokens, output tokens per emulated minute
    minute: float,
    cost: tuple[float, float, float],  # per document: 1 request, its average input and output tokens charged
    latency: float,
    ceiling_per_s: float,
) -> dict[str, Any]:
    """The overload figures of one run (see the module docstring); {} when the run left no answers."""
    start, end = window
    answers = [(float(t), int(status)) for t, status in stats.get("answers", [])]
    if not answers:
        return {}
    # Seconds with no arrival have no timeline row; the window's edges are whole seconds in the scenarios.
    by_second = {int(row["second"]): int(row.get("requests", 0)) for row in stats["timeline"]}
    per_second = [by_second.get(s, 0) for s in range(int(start), int(end))]
    done_before = sum(1 for t, status in answers if status == 200 and t < end)
    oks_after = sorted(t for t, status in answers if status == 200 and t >= end)
    last = max(t for t, _ in answers)
    remaining = max(0, documents - done_before)
    waits = [max(0.0, remaining * c - limit) / (limit / minute) for c, limit in zip(cost, limits, strict=True)]
    best = max(waits) if remaining else 0.0
    end_s = last - end
    return {
        "window": [start, end],
        "window_requests": sum(per_second),
        "window_per_second": per_second,
        "done_before_end": done_before,
        "first_ok_s": round(oks_after[0] - end, 3) if oks_after else None,
        "steady_s": _steady(oks_after, end, _STEADY_SHARE * ceiling_per_s),
        "end_s": round(end_s, 3),
        "best_s": round(best, 3),
        "best_latency_s": round(best + latency, 3) if remaining else 0.0,
        "of_best": round(best / end_s, 3) if end_s > 0 else None,
        "of_best_latency": round((best + latency) / end_s, 3) if end_s > 0 and remaining else None,
    }


def _steady(oks: list[float], end: float, per_second: float) -> float | None:
    """From `end` to the first completion opening a one-second span with at least `per_second` completions."""
    need = max(1, int(per_second + 0.999))
    for i, t in enumerate(oks):
        if i + need - 1 < len(oks) and oks[i + need - 1] < t + 1.0:
            return round(t - end, 3)
    return None
