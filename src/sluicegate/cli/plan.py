"""`sluicegate plan IN.jsonl --deadline 6h`: each route's cost and duration side by side, and what auto would choose."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from sluicegate.cli._options import (
    cache_warmup_option,
    deadline_flag,
    expected_output_option,
    line_defaults_options,
    prices_option,
    provider_option,
    rate_limit_options,
    table_options,
)
from sluicegate.cli._tables import table_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sluicegate._models import RequestItem
    from sluicegate.jobs.reader import Defaults, InputProblem
    from sluicegate.jobs.tables import TableSpec
    from sluicegate.pricing import PriceTable


@click.command()
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@line_defaults_options
@provider_option()
@deadline_flag()
@expected_output_option
@rate_limit_options("of your account")
@cache_warmup_option("Count on prompt-cache warm-up.")
@click.option(
    "--count-tokens",
    "count_sample",
    type=click.IntRange(min=0),
    default=0,
    help="Anthropic: count this many requests with the free count_tokens endpoint (needs ANTHROPIC_API_KEY or "
    "ANTHROPIC_BASE_URL) to correct the character-based input estimate.",
)
@prices_option
@table_options
def plan(
    input_path: Path,
    defaults: Defaults,
    provider: Literal["anthropic", "openai"],
    deadline: float | None,
    expected_output: float,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    cache_warmup: bool,
    count_sample: int,
    prices: PriceTable | None,
    template: str | None,
    id_column: str | None,
) -> None:
    """Compare the routes for INPUT_PATH without sending anything: online, batch (and flex for OpenAI).

    Costs use the price table; input tokens are estimated from characters and answers at --expected-output of
    max_tokens (the max column assumes every answer uses max_tokens). Durations use the given limits; a batch
    takes up to 24 h, most end within an hour. `auto` is the cheapest route that meets the deadline.

    Example: sluicegate plan examples/tickets.jsonl --model claude-haiku-4-5 --deadline 6h --rpm 50
    """
    from rich.console import Console
    from rich.table import Table

    from sluicegate.jobs.planner import plan_file
    from sluicegate.pricing import load_prices

    spec = table_spec(input_path, template, id_column)
    spec = table_spec(input_path, template, id_column)
    scale = _scale(input_path, defaults, spec, count_sample) if count_sample and provider == "anthropic" else None
    if scale is not None:
        click.echo(f"input estimate corrected by x{scale:.3f} from count_tokens on {count_sample} request(s)")
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
        expected_output=expected_output,
        input_scale=scale or 1.0,
        table=spec,
    )
    result, est, cache = found.plan, found.estimate, found.cache
    title = f"{input_path.name}: {est.requests:,} requests, {est.invalid:,} invalid lines"
    if cache is not None:
        title += f"; warm-up reads ~{sum(cache.read.values()):,} prompt tokens from the cache"
    table = Table(title=title)
    for column in ("route", "cost", "cost at max_tokens", "duration", "meets deadline"):
        table.add_column(column, justify="left" if column == "route" else "right", no_wrap=True)
    for route in result.routes:
        table.add_row(
            route.route + (" (auto)" if route.route == result.choice else ""),
            _money(route.cost),
            _money(route.cost_max),
            _duration(route.seconds),
            "-" if route.meets_deadline is None else ("yes" if route.meets_deadline else "no"),
        )
    console = Console()
    console.print(table)
    for route in result.routes:
        console.print(f"{route.route}: {route.note}", highlight=False, soft_wrap=True)
    console.print(f"auto: {result.why}.", highlight=False, soft_wrap=True)


def _scale(input_path: Path, defaults: Defaults, table: TableSpec | None, count: int) -> float | None:
    """The count_tokens correction from the first `count` valid requests, or None (no key, nothing counted)."""
    import contextlib
    import itertools
    import os

    from sluicegate._loop import run_async
    from sluicegate.jobs.calibrate import count_tokens_scale
    from sluicegate.jobs.reader import InputProblem, iter_lines, read_requests
    from sluicegate.jobs.tables import table_requests

    key = os.environ.get("ANTHROPIC_API_KEY", "")
    url = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    if not key and "ANTHROPIC_BASE_URL" not in os.environ:
        raise click.UsageError("--count-tokens needs ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for an emulator)")
    with contextlib.ExitStack() as stack:
        if table is not None:
            parsed: Iterator[RequestItem | InputProblem] = table_requests(input_path, table, defaults, "anthropic")
        else:
            f = stack.enter_context(input_path.open("rb"))
            parsed = read_requests(iter_lines(f), defaults=defaults, provider="anthropic")
        sample = [p.params for p in itertools.islice((p for p in parsed if not isinstance(p, InputProblem)), count)]
    return run_async(lambda: count_tokens_scale(sample, api_key=key or "none", base_url=url))


def _money(value: float | None) -> str:
    return "unknown price" if value is None else f"${value:,.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds / 60:,.1f} min" if seconds < 5400 else f"{seconds / 3600:,.1f} h"
