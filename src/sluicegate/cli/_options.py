"""Options shared by several subcommands."""

from __future__ import annotations

import functools
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sluicegate.pricing import PriceTable

__all__ = [
    "cache_warmup_option",
    "cost_cap",
    "deadline_flag",
    "expected_output_option",
    "job_control_options",
    "job_file_options",
    "line_defaults_options",
    "prices_option",
    "provider_option",
    "rate_limit_options",
    "resume_command",
    "shared_limits_options",
    "table_options",
]

Decorator = Callable[[Any], Any]

# Flags that act once: repeating them on resume would discard (restart) or resend (retry-failed) paid results.
_ONCE = frozenset({"--restart", "--retry-failed"})


def cost_cap(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A --max-cost value (a callback): a positive, finite number of USD. A cap of 0 or below would stop before the
    first request and NaN would never stop; both are usage errors."""
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise click.BadParameter(f"the cap must be a positive number of USD, got {value:g}", ctx=ctx, param=param)
    return value


def resume_command(argv: list[str]) -> str:
    """The exact command that resumes this job: the same subcommand and flags, minus the one-time ones."""
    return shlex.join(["sluicegate", *(word for word in argv[1:] if word not in _ONCE)])


def _load_prices(ctx: click.Context, param: click.Parameter, value: Path | None) -> PriceTable | None:
    """Read the price file while options are parsed, so a bad one is a usage error (exit 2) naming file and field."""
    if value is None:
        return None
    from sluicegate._exceptions import ConfigError
    from sluicegate.pricing import PriceTable

    try:
        return PriceTable.load(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def prices_option(command: Any) -> Any:
    """`--prices FILE`: the user's own price table instead of the shipped one."""
    return click.option(
        "--prices",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_load_prices,
        help="Price table (JSON, the format of the shipped data/prices.json) instead of the built-in prices.",
    )(command)


def job_file_options(command: Any) -> Any:
    """INPUT and `-o OUTPUT` in the Message Batches formats, and the defaults for lines that leave fields out."""
    for option in reversed(
        [
            click.argument("input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
            click.option(
                "-o",
                "--output",
                "output_path",
                required=True,
                type=click.Path(dir_okay=False, path_type=Path),
                help="Results in the Message Batches results format.",
            ),
        ]
    ):
        command = option(command)
    return line_defaults_options(command)


def line_defaults_options(command: Any) -> Any:
    """`--model`, `--max-tokens` and `--system` for lines that leave them out, given to the command as one
    `defaults: Defaults`. The same words in every command's help, so the precedence reads the same everywhere."""

    @functools.wraps(command)
    def with_defaults(*args: Any, model: str | None, max_tokens: int | None, system: str | None, **kwargs: Any) -> Any:
        from sluicegate.jobs.reader import Defaults

        return command(*args, defaults=Defaults(model=model, max_tokens=max_tokens, system=system), **kwargs)

    for option in reversed(
        [
            click.option("--model", default=None, help="Model for lines that name none (a line's own wins)."),
            click.option(
                "--max-tokens",
                type=click.IntRange(min=1),
                default=None,
                help="max_tokens for lines that set none (a line's own wins).",
            ),
            click.option("--system", default=None, help="System prompt for lines that have none (a line's own wins)."),
        ]
    ):
        with_defaults = option(with_defaults)
    return with_defaults


def _fallback(ctx: click.Context, param: click.Parameter, value: str | None) -> bool | int:
    if value is None:
        return False
    if value == "auto":
        return True
    try:
        divisor = int(value)
    except ValueError:
        divisor = 0
    if divisor < 1:
        raise click.BadParameter(f"expected a whole number of processes (1 or more), got {value!r}")
    return divisor


def shared_limits_options(command: Any) -> Any:
    """`--shared-limits redis://...`, `--shared-limits-name` and `--shared-limits-fallback [N]`: one limiter in
    Redis for every process on a key, and what to do while that Redis is unreachable."""
    command = click.option(
        "--shared-limits-fallback",
        metavar="[N]",
        is_flag=False,
        flag_value="auto",
        default=None,
        callback=_fallback,
        help=(
            "While the shared-limits Redis is unreachable, run on 1/N of the limits locally instead of waiting "
            "(N: the processes last seen in the pool, or the number given; a number also allows starting "
            "without Redis)."
        ),
    )(command)
    command = click.option(
        "--shared-limits-name", default=None, help="Pool name (default: a hash of key, base URL and model class)."
    )(command)
    return click.option(
        "--shared-limits",
        metavar="redis://HOST:PORT/DB",
        default=None,
        help="Share one rate limiter through Redis with every process on the same key (redis extra).",
    )(command)


_PROVIDER_HELP = "API the requests are for: Anthropic Messages or OpenAI Chat Completions."


def provider_option(help: str = _PROVIDER_HELP) -> Decorator:
    """`--provider anthropic|openai` (anthropic by default), with the command's own help."""
    return click.option(
        "--provider", type=click.Choice(["anthropic", "openai"]), default="anthropic", show_default=True, help=help
    )


def rate_limit_options(what: str = "", *, learnt: bool = False) -> Decorator:
    """`--rpm/--itpm/--otpm`: the account's per-minute limits, for `what` (e.g. "for the duration"); `learnt`
    says that unset ones are learnt from the server's headers."""
    tail = f" {what}" if what else ""
    default = " (default: learnt from headers)" if learnt else ""

    def apply(command: Any) -> Any:
        for flag, name in (("--otpm", "Output tokens"), ("--itpm", "Input tokens"), ("--rpm", "Requests")):
            command = click.option(flag, type=float, default=None, help=f"{name} per minute{tail}{default}.")(command)
        return command

    return apply


def expected_output_option(command: Any) -> Any:
    """`--expected-output`: the answer length to plan on, as a fraction of max_tokens."""
    return click.option(
        "--expected-output",
        type=click.FloatRange(0, 1),
        default=0.25,
        show_default=True,
        help="Expected answer length as a fraction of max_tokens.",
    )(command)


def cache_warmup_option(help: str) -> Decorator:
    """`--cache-warmup/--no-cache-warmup` (on by default), with the command's own help."""
    return click.option("--cache-warmup/--no-cache-warmup", default=True, show_default=True, help=help)


def _deadline(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A --deadline value (`6h`, `90m`, `1h30m`, `2d`) in seconds; a usage error otherwise."""
    if value is None:
        return None
    from sluicegate.jobs.planner import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def deadline_flag(help: str = "When the job must be done, e.g. 6h, 90m, 2d.") -> Decorator:
    """`--deadline DURATION`, parsed into seconds, with the command's own help."""
    return click.option("--deadline", callback=_deadline, default=None, help=help)


_TEMPLATE_HELP = (
    "Make each row of a table (Parquet, CSV, or JSONL with any fields) a request: "
    "'Summarise this ticket: {body}' fills {column} from the row. A table's output (.parquet/.csv) keeps the "
    "input's columns and adds text, error, status, input_tokens, output_tokens and cost."
)


def table_options(command: Any) -> Any:
    """`--template` and `--id-column`: read a table's rows as requests."""
    command = click.option(
        "--id-column", default=None, help="With --template: the column holding each row's id (default row-N)."
    )(command)
    return click.option("--template", default=None, help=_TEMPLATE_HELP)(command)


def job_control_options(retry_help: str, quiet_help: str) -> Decorator:
    """`--retry-failed`, `--restart` and `--quiet`, the controls of a durable job, with the command's own help."""

    def apply(command: Any) -> Any:
        command = click.option("--quiet", is_flag=True, help=quiet_help)(command)
        command = click.option("--restart", is_flag=True, help="Discard this job's stored progress and start over.")(
            command
        )
        return click.option("--retry-failed", is_flag=True, help=retry_help)(command)

    return apply
