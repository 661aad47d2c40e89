"""`sluicegate emulate`: serve the API emulator until Ctrl-C and print how to point the SDKs at it."""

from __future__ import annotations

import click

from sluicegate.emulator.config import EmulatorConfig, FaultSpec

FAULT_KINDS = ("overloaded", "api_error", "unavailable", "reset", "hang", "stream_error", "truncate", "slow")


def _parse_fault(text: str) -> FaultSpec:
    """`KIND:PROBABILITY` or `KIND@START-END` (real seconds since start)."""
    if "@" in text:
        kind, window = text.split("@", 1)
        start, _, end = window.partition("-")
        spec = FaultSpec(kind=kind, start=float(start), end=float(end) if end else None)  # type: ignore[arg-type]
    else:
        kind, _, prob = text.partition(":")
        spec = FaultSpec(kind=kind, probability=float(prob or 1.0))  # type: ignore[arg-type]
    if kind not in FAULT_KINDS:
        raise click.BadParameter(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    return spec


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 also serves other machines)."
)
@click.option("--port", default=0, type=int, show_default=True, help="0 picks a free port.")
@click.option(
    "--tier",
    default=1,
    type=click.IntRange(1, 4),
    show_default=True,
    help="Anthropic usage tier whose published limits apply (the same default as `run`'s built-in emulator).",
)
@click.option("--rpm", type=int, default=None, help="Requests per emulated minute, instead of the tier's.")
@click.option("--itpm", type=int, default=None, help="Input tokens per emulated minute, instead of the tier's.")
@click.option("--otpm", type=int, default=None, help="Output tokens per emulated minute, instead of the tier's.")
@click.option(
    "--minute",
    type=float,
    default=6.0,
    show_default=True,
    help="Real seconds per emulated rate-limit minute (60 for real time; 6 is `run`'s default, so limits bind fast).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for answers, latency jitter and faults.")
@click.option("--latency", type=float, default=0.0, show_default=True, help="Seconds to first token.")
@click.option("--per-token", type=float, default=0.0, show_default=True, help="Seconds per output token.")
@click.option("--jitter", type=float, default=0.0, show_default=True, help="Relative latency jitter (seeded).")
@click.option("--burst", type=int, default=None, help="Short-interval cap: N requests, refilled at the RPM rate.")
@click.option(
    "--output-accounting",
    type=click.Choice(["produced", "reserved"]),
    default="produced",
    show_default=True,
    help="Count produced output tokens, or reserve max_tokens up front.",
)
@click.option(
    "--headers-counted",
    type=click.Choice(["end", "admission"]),
    default="end",
    show_default=True,
    help="When each answer's rate-limit headers are counted: as it ends, or at the request's admission.",
)
@click.option("--spend-cap", is_flag=True, help="Answer every request with the spend-limit 429.")
@click.option("--invalid-key", "invalid_keys", multiple=True, help="An API key that gets 401, repeatable.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    help=f"KIND:PROB (a share of requests) or KIND@START-END (real seconds since start), repeatable. "
    f"KIND is one of: {', '.join(FAULT_KINDS)}.",
)
def emulate(
    host: str,
    port: int,
    tier: int,
    rpm: int | None,
    itpm: int | None,
    otpm: int | None,
    minute: float,
    seed: int,
    latency: float,
    per_token: float,
    jitter: float,
    burst: int | None,
    output_accounting: str,
    headers_counted: str,
    spend_cap: bool,
    invalid_keys: tuple[str, ...],
    faults: tuple[str, ...],
) -> None:
    """Run a local Anthropic + OpenAI API emulator with real rate limits.

    Example: sluicegate emulate --port 8080 --tier 2 --fault overloaded:0.05
    """
    import anyio

    from sluicegate.emulator.server import run_emulator

    config = EmulatorConfig(
        tier=tier,
        rpm=rpm,
        itpm=itpm,
        otpm=otpm,
        minute=minute,
        seed=seed,
        first_token_latency=latency,
        per_token_latency=per_token,
        jitter=jitter,
        burst=burst,
        output_accounting=output_accounting,  # type: ignore[arg-type]
        headers_counted=headers_counted,  # type: ignore[arg-type]
        spend_cap=spend_cap,
        invalid_keys=frozenset(invalid_keys),
        faults=tuple(_parse_fault(f) for f in faults),
    )
    with run_emulator(config, host=host, port=port) as emu:
        click.echo(f"Emulator listening on {emu.base_url}")
        click.echo(f"export ANTHROPIC_BASE_URL={emu.base_url}")
        click.echo("export ANTHROPIC_API_KEY=emulator")
        click.echo(f"export OPENAI_BASE_URL={emu.openai_base_url}")
        click.echo("export OPENAI_API_KEY=emulator")
        try:
            # The server runs in its own thread; this one only waits for Ctrl-C (no timer, so no clock to go through).
            anyio.run(anyio.sleep_forever)
        except KeyboardInterrupt:
            click.echo("stopping")
