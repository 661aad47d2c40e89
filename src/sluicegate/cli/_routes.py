"""Options for routes and deadlines, shared by `batch`, `run` and `plan`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from sluicegate.jobs.outcome import JobOutcome
    from sluicegate.jobs.reader import Defaults
    from sluicegate.jobs.tables import TableSpec
    from sluicegate.pricing import PriceTable

__all__ = [
    "DEFAULT_URLS",
    "EMULATED_MINUTE",
    "EMULATED_POLL",
    "POLL",
    "batch_route",
    "deadline_settings",
    "pick_route",
]

DEFAULT_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}

# Seconds between a batch's status checks: the built-in emulator ends a batch in a few seconds.
POLL = 30.0
EMULATED_POLL = 1.0

# The built-in emulator's compressed time: one rate-limit minute lasts this many real seconds.
EMULATED_MINUTE = 6.0


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


def pick_route(
    route: str,
    deadline: float | None,
    input_path: Path,
    defaults: Defaults,
    provider: Literal["anthropic", "openai"],
    limits: tuple[float | None, float | None, float | None],
    prices: PriceTable | None,
    cache_warmup: bool,
    table: TableSpec | None = None,
) -> Literal["online", "batch", "flex"]:
    """The route to take: the given one, or for `auto` the planner's choice, said on stderr with its reason."""
    if route != "auto":
        if route == "flex" and provider != "openai":
            raise click.UsageError("--route flex is OpenAI's service tier: use it with --provider openai")
        return "flex" if route == "flex" else "batch" if route == "batch" else "online"
    from sluicegate.jobs.planner import plan_file
    from sluicegate.pricing import load_prices

    rpm, itpm, otpm = limits
    found = plan_file(
        input_path,
        defaults,
        load_prices(prices),
        provider=provider,
        rpm=rpm,
        itpm=itpm,
        otpm=otpm,
        deadline=deadline,
        cache_warmup=cache_warmup,
        table=table,
    )
    click.echo(f"route auto: {found.plan.why}.", err=True)
    return found.plan.choice


def batch_route(
    *,
    input_path: Path,
    output_path: Path,
    provider: Literal["anthropic", "openai"],
    url: str | None,
    key: str,
    label: str,
    emulated: bool,
    defaults: Defaults,
    prices: PriceTable | None,
    deadline: float | None,
    limits: tuple[float | None, float | None, float | None],
    minute: float | None,
    cache_warmup: bool,
    retry_failed: bool,
    restart: bool,
    quiet: bool,
    resume: str = "",
    table: TableSpec | None = None,
    poll_interval: float | None = None,
    max_cost: float | None = None,
) -> JobOutcome:
    """`run --route batch`: the batch job (with the deadline fallback) on the same files."""
    from rich.console import Console

    from sluicegate._loop import run_async
    from sluicegate.jobs._view import JobView
    from sluicegate.jobs.batch_runner import BatchJobConfig, run_batch_job

    rpm, itpm, otpm = limits
    config = BatchJobConfig(
        input_path=input_path,
        output_path=output_path,
        api_key=key,
        base_url=url or DEFAULT_URLS[provider],
        provider=provider,
        settings_base=label,
        defaults=defaults,
        prices=prices,
        poll_interval=poll_interval if poll_interval is not None else EMULATED_POLL if emulated else POLL,
        retry_failed=retry_failed,
        restart=restart,
        cache_warmup=cache_warmup,
        forget_unknown_batches=emulated,
        resume_command=resume,
        table=table,
        max_cost=max_cost,
        **deadline_settings(deadline, rpm, itpm, otpm, emulated, minute=minute),
    )
    console = Console(stderr=True)
    view = JobView(say=lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True))
    return run_async(lambda: run_batch_job(config, view=None if quiet else view))
