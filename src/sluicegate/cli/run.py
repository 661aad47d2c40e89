"""`sluicegate run IN.jsonl -o OUT.jsonl`: a durable, resumable job with a live progress view."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import click

from sluicegate.cli._options import (
    cache_warmup_option,
    cost_cap,
    deadline_flag,
    job_control_options,
    job_file_options,
    prices_option,
    provider_option,
    rate_limit_options,
    resume_command,
    shared_limits_options,
    table_options,
)
from sluicegate.cli._routes import EMULATED_POLL, POLL, batch_route, pick_route
from sluicegate.cli._tables import table_spec
from sluicegate.cli.emulate import FAULT_KINDS
from sluicegate.jobs.reader import Defaults
from sluicegate.limits.limiter import Limits

if TYPE_CHECKING:
    from sluicegate.jobs.tables import TableSpec
    from sluicegate.pricing import PriceTable

# The emulator's defaults for a no-account run: the published Tier 1 limits, with one emulated minute
# lasting 6 real seconds, so a rate limit visibly binds and a 100-line example finishes in seconds.
_EMULATED_MINUTE = 6.0


@contextlib.contextmanager
def _endpoint(
    provider: str, base_url: str | None, emulate: bool, tier: int, minute: float, faults: tuple[str, ...]
) -> Iterator[tuple[str | None, str, str, bool]]:
    """(base_url, api_key, endpoint label for the store, emulated?)."""
    key_var = "ANTHROPIC_API_KEY" if provider == "anthropic" else "OPENAI_API_KEY"
    url_var = "ANTHROPIC_BASE_URL" if provider == "anthropic" else "OPENAI_BASE_URL"
    api_key = os.environ.get(key_var, "")
    base_url = base_url or os.environ.get(url_var) or None
    if not emulate and (api_key or base_url):
        label = urlsplit(base_url).netloc if base_url else "default"
        yield base_url, api_key or "none", label, False
        return
    from sluicegate.cli.emulate import _parse_fault
    from sluicegate.emulator import EmulatorConfig, run_emulator

    config = EmulatorConfig(
        tier=tier,
        minute=minute,
        first_token_latency=0.3,
        per_token_latency=0.004,
        jitter=0.3,
        min_output_tokens=30,
        max_output_tokens=120,
        faults=tuple(_parse_fault(f) for f in faults),
    )
    if not emulate:
        click.echo(
            f"No {key_var} or {url_var} set: running against the built-in API emulator (Tier {tier} limits, "
            f"1 emulated minute = {minute:g} s). Set {key_var} to use the real API.",
            err=True,
        )
    with run_emulator(config) as emu:
        url = emu.base_url if provider == "anthropic" else emu.openai_base_url
        yield url, "emulator", "emulator", True


def _table_spec(input_path: Path, output_path: Path, template: str | None, id_column: str | None) -> TableSpec | None:
    """The template job a table input or a --template asks for; a usage error (exit 2) when it cannot work."""
    from sluicegate.jobs.table_output import is_table_output

    spec = table_spec(input_path, template, id_column)
    if spec is None and is_table_output(output_path):
        raise click.UsageError("a table output (.parquet/.csv) needs a table job: give --template")
    return spec


@click.command()
@job_file_options
@provider_option("API to call: Anthropic Messages (ANTHROPIC_API_KEY) or OpenAI Chat Completions (OPENAI_API_KEY).")
@click.option("--base-url", default=None, help="API base URL (default: the provider's, or *_BASE_URL).")
@rate_limit_options("of your account, a ceiling", learnt=True)
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None, help="Cap on requests in flight.")
@click.option(
    "--max-cost", type=float, default=None, callback=cost_cap, help="Stop admitting before spend could pass this (USD)."
)
@prices_option
@click.option("--ordered", is_flag=True, help="Write results in input order (default: completion order).")
@click.option("--emulate", is_flag=True, help="Run against the built-in emulator even if a key is set.")
@click.option("--tier", type=click.IntRange(1, 4), default=1, show_default=True, help="Emulator tier.")
@click.option(
    "--minute",
    type=float,
    default=None,
    help=f"Real seconds per rate-limit minute of the built-in emulator (default {_EMULATED_MINUTE:g}); given, it "
    "also overrides the windows learnt from the server's rate-limit headers.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help=f"Built-in emulator fault: KIND:PROB or KIND@START-END, KIND one of {', '.join(FAULT_KINDS)}.",
)
@cache_warmup_option("Mark prefixes shared by several requests for prompt caching and send one of each first.")
@click.option(
    "--route",
    type=click.Choice(["online", "batch", "flex", "auto"]),
    default="online",
    show_default=True,
    help="online; batch (the provider's batch API, half price); flex (OpenAI's flex tier at batch prices, "
    "standard for what it refuses); auto: the cheapest that meets --deadline.",
)
@deadline_flag()
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Batch route: seconds between status checks (default {POLL:g}; {EMULATED_POLL:g} with the emulator).",
)
@shared_limits_options
@table_options
@job_control_options("Send again the items that ended in error.", "No live progress; only the final message.")
def run(
    input_path: Path,
    output_path: Path,
    defaults: Defaults,
    provider: Literal["anthropic", "openai"],
    base_url: str | None,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    max_concurrency: int | None,
    max_cost: float | None,
    prices: PriceTable | None,
    ordered: bool,
    emulate: bool,
    tier: int,
    minute: float | None,
    faults: tuple[str, ...],
    cache_warmup: bool,
    route: str,
    deadline: float | None,
    poll_interval: float | None,
    shared_limits: str | None,
    shared_limits_name: str | None,
    shared_limits_fallback: bool | int,
    template: str | None,
    id_column: str | None,
    retry_failed: bool,
    restart: bool,
    quiet: bool,
) -> None:
    """Send every request in INPUT_PATH (JSONL) and write one result line per request to OUTPUT.

    Re-running the same command resumes: finished items are skipped, unfinished ones are sent.
    For half price with results within 24 h, `sluicegate batch` sends the same file through the Message Batches API.
    --model, --max-tokens and --system fill what a line leaves out; a line's own value always wins (a note says
    how many lines kept their own). Exit codes: 0 all succeeded, 1 some items failed, 2 usage error, 3 cost cap
    reached, 4 run aborted (bad key, spend cap), 5 disk full, 130 interrupted.

    Example: sluicegate run examples/tickets.jsonl -o results.jsonl --model claude-haiku-4-5 --max-cost 5
    """
    from rich.console import Console

    from sluicegate._loop import run_async
    from sluicegate.cli._display import show_job
    from sluicegate.jobs.runner import JobConfig, run_job

    table = _table_spec(input_path, output_path, template, id_column)
    limits = None
    if rpm or itpm or otpm:
        limits = Limits(requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm)
    console = Console(stderr=True)
    emulator_minute = minute or _EMULATED_MINUTE
    with _endpoint(provider, base_url, emulate, tier, emulator_minute, faults) as (url, key, label, emulated):
        given = (rpm, itpm, otpm)
        chosen = pick_route(route, deadline, input_path, defaults, provider, given, prices, cache_warmup, table)
        if chosen == "batch":
            outcome = batch_route(
                input_path=input_path,
                output_path=output_path,
                provider=provider,
                url=url,
                key=key,
                label=label,
                emulated=emulated,
                defaults=defaults,
                prices=prices,
                deadline=deadline,
                limits=given,
                minute=emulator_minute if emulated else minute,
                cache_warmup=cache_warmup,
                retry_failed=retry_failed,
                restart=restart,
                quiet=quiet,
                resume=resume_command(sys.argv),
                table=table,
                poll_interval=poll_interval,
                max_cost=max_cost,
            )
            click.echo(outcome.message, err=True)
            sys.exit(outcome.exit_code)
        config = JobConfig(
            input_path=input_path,
            output_path=output_path,
            provider=provider,
            api_key=key,
            base_url=url,
            settings_base=label,
            defaults=defaults,
            limits=limits,
            max_concurrency=max_concurrency,
            max_cost=max_cost,
            prices=prices,
            ordered=ordered,
            retry_failed=retry_failed,
            restart=restart,
            cache_warmup=cache_warmup,
            service_tier="flex" if chosen == "flex" else "standard",
            deadline=deadline,
            minute=minute,  # None: every limit's window is learnt from the headers
            resume_command=resume_command(sys.argv),
            shared_limits=shared_limits,
            shared_limits_name=shared_limits_name,
            shared_limits_fallback=shared_limits_fallback,
            table=table,
        )
        display_minute = emulator_minute if emulated else (minute or 60.0)
        outcome = run_async(
            lambda: show_job(
                lambda view, clock: run_job(config, view=view, clock=clock),
                console=console,
                quiet=quiet,
                minute=display_minute,
                prices=prices,
            )
        )
    click.echo(outcome.message, err=True)
    sys.exit(outcome.exit_code)
