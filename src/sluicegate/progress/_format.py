"""Small text formatters shared by the live view, the plain log line and the summary."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["format_cost", "format_count", "format_duration", "format_kinds", "format_rate"]


def format_count(value: float) -> str:
    """Compact magnitude: 950, 41.2k, 50k, 1.5M."""
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            text = f"{value / threshold:.1f}"
            return (text[:-2] if text.endswith(".0") else text) + suffix
    return f"{value:.0f}"


def format_rate(per_second: float) -> str:
    """Completions per second with precision that suits the magnitude."""
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    if per_second >= 10:
        return f"{per_second:.1f}/s"
    return f"{per_second:.2f}/s"


def format_duration(seconds: float | None) -> str:
    """42s, 17m50s, 2h05m; '--' when unknown."""
    if seconds is None:
        return "--"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_cost(cost: float | None) -> str:
    """Dollars; 'unknown' when the model's price is not known."""
    if cost is None:
        return "unknown"
    if cost >= 1:
        return f"${cost:,.2f}"
    return f"${cost:.4f}"


def format_kinds(counts: Mapping[str, int]) -> str:
    """'server 2, transport 1' in descending count order; '0' when empty."""
    items = sorted(((k, n) for k, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return "0"
    return ", ".join(f"{kind} {n:,}" for kind, n in items)
