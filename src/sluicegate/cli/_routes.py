"""Options for routes and deadlines, shared by `batch`, `run` and `plan`."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["EMULATED_MINUTE", "deadline_option", "deadline_settings"]

# The built-in emulator's compressed time: one rate-limit minute lasts this many real seconds.
EMULATED_MINUTE = 6.0


def deadline_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A --deadline value (`6h`, `90m`, `1h30m`, `2d`) in seconds; a usage error otherwise."""
    if value is None:
        return None
    from sluicegate.jobs.planner import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def deadline_settings(
    deadline: float | None,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    emulated: bool,
    *,
    minute: float | None = None,
    latency: float | None = None,
    cancel_allowance: float | None = None,
) -> dict[str, Any]:
    """BatchJobConfig fields for a deadline: the online pace (given limits, else the published Tier 1 ones) and,
    against the built-in emulator, its compressed minute and quick cancels (each may be given instead)."""
    from sluicegate.jobs.deadline import OnlinePace
    from sluicegate.limits.limiter import Limits

    given = Limits(requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm)
    base = OnlinePace()
    pace = OnlinePace(
        requests_per_minute=rpm or base.requests_per_minute,
        input_tokens_per_minute=itpm or base.input_tokens_per_minute,
        output_tokens_per_minute=otpm or base.output_tokens_per_minute,
        minute=minute or (EMULATED_MINUTE if emulated else 60.0),
        latency=latency if latency is not None else (2.0 if emulated else base.latency),
    )
    return {
        "deadline": deadline,
        "pace": pace,
        "limits": given if (rpm or itpm or otpm) else None,
        "cancel_allowance": cancel_allowance if cancel_allowance is not None else (2.0 if emulated else 120.0),
    }
