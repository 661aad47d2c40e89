"""`sluicegate estimate IN.jsonl`: tokens, cost (online and Batch API) and duration, before sending anything."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from sluicegate.cli._options import (
    expected_output_option,
    line_defaults_options,
    prices_option,
    provider_option,
    rate_limit_options,
    table_options,
)
from sluicegate.cli._tables import table_spec

if TYPE_CHECKING:
    from sluicegate.jobs.reader import Defaults
    from sluicegate.pricing import PriceTable


def _money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 0.01 else f"${value:,.2f}"


def _range(low: float | None, high: float | None) -> str:
    return "unknown: no price (--prices FILE)" if low is None or high is None else f"{_money(low)} – {_money(high)}"


def _duration(minutes: float) -> str:
    seconds = minutes * 60
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if minutes < 90:
        return f"{minutes:,.1f} min"
    return f"{minutes / 60:,.1f} h"


def _tier_limits(tier: int, models: list[str]) -> tuple[int, int, int]:
    """The published limits of an Anthropic tier (Haiku's own when every model is a Haiku)."""
    from sluicegate.emulator.config import HAIKU_TIERS, TIERS

    haiku = bool(models) and all("haiku" in model for model in models)
    return (HAIKU_TIERS if haiku else TIERS)[tier]


@click.command()
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@line_defaults_options
@provider_option()
@expected_output_option
@rate_limit_options("of your account, for the duration")
@click.option(
    "--tier",
    type=click.IntRange(1, 4),
    default=None,
    help="Use an Anthropic usage tier's published limits (1-4) for the duration; --rpm/--itpm/--otpm override them.",
)
@prices_option
@table_options
def estimate(
    input_path: Path,
    defaults: Defaults,
    provider: Literal["anthropic", "openai"],
    expected_output: float,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    tier: int | None,
    prices: PriceTable | None,
    template: str | None,
    id_column: str | None,
) -> None:
    """Estimate what running INPUT_PATH will cost and take, without sending anything.

    Input tokens are estimated from characters; the cost range goes from the expected answer length to
    max_tokens (the most you can be billed). Batch API prices are the online ones times the table's batch
    discount (half, in the built-in table). The duration needs limits: yours (--rpm/--itpm/--otpm) or a tier's.

    Example: sluicegate estimate examples/tickets.jsonl --tier 2
    """
    from rich.console import Console
    from rich.table import Table

    from sluicegate.jobs.estimate import estimate as run_estimate
    from sluicegate.jobs.reader import iter_lines, read_requests
    from sluicegate.jobs.tables import table_requests

    spec = table_spec(input_path, template, id_column)
    if spec is not None:
        rows = table_requests(input_path, spec, defaults, provider)
        est = run_estimate(rows, expected_output_fraction=expected_output)
    else:
        with input_path.open("rb") as f:
            parsed = read_requests(iter_lines(f), defaults=defaults, provider=provider)
            est = run_estimate(parsed, expected_output_fraction=expected_output)
    table = Table(title=f"{input_path.name}: {est.requests:,} requests, {est.invalid:,} invalid lines")
    for column in ("model", "requests", "input tokens", "output tokens (expected / max)", "online cost", "batch cost"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column == "model")
    for name, row in sorted(est.models.items()):
        low = row.cost(name, row.expected_output_tokens, prices=prices)
        high = row.cost(name, row.max_output_tokens, prices=prices)
        blow = row.cost(name, row.expected_output_tokens, batch=True, prices=prices)
        bhigh = row.cost(name, row.max_output_tokens, batch=True, prices=prices)
        table.add_row(
            name,
            f"{row.requests:,}",
            f"~{row.input_tokens:,}",
            f"{row.expected_output_tokens:,} / {row.max_output_tokens:,}",
            _range(low, high),
            _range(blow, bhigh),
        )
    console = Console()
    console.print(table)
    if tier is not None:
        tier_rpm, tier_itpm, tier_otpm = _tier_limits(tier, list(est.models))
        rpm, itpm, otpm = rpm or tier_rpm, itpm or tier_itpm, otpm or tier_otpm
        console.print(
            f"Tier {tier} limits: {rpm:,.0f} requests, {itpm:,.0f} input and {otpm:,.0f} output tokens a minute."
        )
    expected, worst = est.minutes(rpm, itpm, otpm), est.minutes(rpm, itpm, otpm, expected=False)
    if expected is None or worst is None:
        console.print(
            "Duration: give your account's limits (--rpm, --itpm, --otpm) or a usage tier (--tier 1-4) to estimate it."
        )
    else:
        console.print(
            f"Duration at these limits: {_duration(expected)} expected, {_duration(worst)} if every answer uses "
            "max_tokens."
        )
    unpriced = sorted(name for name, row in est.models.items() if row.cost(name, 1, prices=prices) is None)
    if unpriced:
        names = ", ".join(repr(name) for name in unpriced)
        console.print(
            f"No price is known for {names}: give a price file with --prices FILE (the format of the built-in "
            "table, sluicegate/data/prices.json)."
        )
    for problem in est.first_problems:
        console.print(f"[yellow]line {problem.line}[/]: {problem.field or 'line'}: {problem.message}")
