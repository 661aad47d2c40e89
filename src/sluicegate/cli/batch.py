"""`sluicegate batch IN.jsonl -o OUT.jsonl`: the same job through a batch API (Anthropic or OpenAI), at half price."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from sluicegate.cli import _options as options
from sluicegate.cli._routes import DEFAULT_URLS, EMULATED_POLL, POLL, deadline_settings
from sluicegate.jobs.reader import Defaults

if TYPE_CHECKING:
    from sluicegate.pricing import PriceTable


@click.command()
@options.job_file_options
@options.provider_option("Message Batches (anthropic) or the Batch API with file uploads (openai).")
@click.option("--base-url", default=None, help="API base URL (default: the API's, or *_BASE_URL).")
@options.prices_option
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=None,
    help=f"Seconds between status checks (default {POLL:g}; {EMULATED_POLL:g} with the built-in emulator).",
)
@options.cache_warmup_option(
    "Anthropic: mark prefixes shared by several requests for caching (1 h) and prime each in its own batch."
)
@options.deadline_flag(
    "End by then (e.g. 6h): batches still running when only the time to finish online is left are "
    "cancelled, what they finished is kept and the rest is sent online."
)
@options.rate_limit_options("online, to time a deadline cancel")
@click.option(
    "--minute",
    type=float,
    default=None,
    help="Real seconds per rate-limit minute: only for emulators in compressed time.",
)
# For tests against a local emulator: the allowance for one online answer and for a cancel to take effect.
@click.option("--online-latency", type=click.FloatRange(min=0), default=None, hidden=True)
@click.option("--cancel-allowance", type=click.FloatRange(min=0), default=None, hidden=True)
@click.option(
    "--max-cost",
    type=float,
    callback=options.cost_cap,
    default=None,
    help="The job's cap in USD, across re-runs: a batch is created only if every request's worst cost at the "
    "batch price still fits; what does not fit is not sent, and named.",
)
@options.job_control_options(
    "Submit again the items that ended in error (or expired).", "No progress lines; only the final message."
)
# For tests and odd accounts: smaller batches than the API allows.
@click.option("--max-batch-requests", type=click.IntRange(min=1), default=None, hidden=True)
@click.option("--max-batch-bytes", type=click.IntRange(min=1024), default=None, hidden=True)
def batch(
    input_path: Path,
    output_path: Path,
    defaults: Defaults,
    provider: Literal["anthropic", "openai"],
    base_url: str | None,
    prices: PriceTable | None,
    poll_interval: float | None,
    cache_warmup: bool,
    deadline: float | None,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    minute: float | None,
    online_latency: float | None,
    cancel_allowance: float | None,
    max_cost: float | None,
    retry_failed: bool,
    restart: bool,
    quiet: bool,
    max_batch_requests: int | None,
    max_batch_bytes: int | None,
) -> None:
    """Send every request in INPUT_PATH (JSONL) through a batch API: half price, results within 24 h.

    Same input and output files as `sluicegate run`. The input is split into batches within the API's limits
    (Anthropic: 100,000 requests or 256 MB each; OpenAI: 50,000 requests or 200 MB per uploaded file, one model
    per file); each batch is recorded in the job store as soon as it is created, then
    polled until it ends and its results are stored. Re-running the same command (after Ctrl-C or a crash)
    re-attaches to the batches already submitted and submits only the rest.
    Exit codes: 0 all succeeded, 1 some items failed, 2 usage error, 3 stopped at --max-cost, 4 stopped (bad
    key, API unreachable), 5 disk full (resume once there is space), 130 interrupted.

    Example: sluicegate batch examples/tickets.jsonl -o results.jsonl --model claude-haiku-4-5
    """
    from rich.console import Console

    from sluicegate._loop import run_async
    from sluicegate.cli.run import _EMULATED_MINUTE, _endpoint
    from sluicegate.jobs._view import JobView
    from sluicegate.jobs.batch_runner import BatchJobConfig, run_batch_job

    console = Console(stderr=True)
    with _endpoint(provider, base_url, False, 1, _EMULATED_MINUTE, ()) as (url, key, label, emulated):
        interval = poll_interval
        if interval is None:
            interval = EMULATED_POLL if emulated else POLL
        config = BatchJobConfig(
            input_path=input_path,
            output_path=output_path,
            api_key=key,
            base_url=url or DEFAULT_URLS[provider],
            provider=provider,
            settings_base=label,
            defaults=defaults,
            prices=prices,
            poll_interval=interval,
            retry_failed=retry_failed,
            cache_warmup=cache_warmup,
            **deadline_settings(
                deadline,
                rpm,
                itpm,
                otpm,
                emulated,
                minute=minute,
                latency=online_latency,
                cancel_allowance=cancel_allowance,
            ),
            restart=restart,
            max_requests=max_batch_requests,
            max_bytes=max_batch_bytes,
            forget_unknown_batches=emulated,
            resume_command=options.resume_command(sys.argv),
            max_cost=max_cost,
        )
        view = JobView(say=lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True))
        outcome = run_async(lambda: run_batch_job(config, view=None if quiet else view))
    click.echo(outcome.message, err=True)
    sys.exit(outcome.exit_code)
