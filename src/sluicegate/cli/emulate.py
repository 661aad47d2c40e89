"""`sluicegate emulate`: serve the API emulator until Ctrl-C and print how to point the SDKs at it."""

from __future__ import annotations

import click

from sluicegate.emulator.config import EmulatorConfig, FaultSpec

_FAULT_KINDS = ("overloaded", "api_error", "unavailable", "reset", "hang", "stream_error", "truncate", "slow")


def _parse_fault(text: str) -> FaultSpec:
    """`KIND:PROBABILITY` or `KIND@START-END` (real seconds since start)."""
    if "@" in text:
        kind, window = text.split("@", 1)
        start, _, end = window.partition("-")
        spec = FaultSpec(kind=kind, start=float(start), end=float(end) if end else None)  # type: ignore[arg-type]
    else:
        kind, _, prob = text.partition(":")
        spec = FaultSpec(kind=kind, probability=float(prob or 1.0))  # type: ignore[arg-type]
    if kind not in _FAULT_KINDS:
        raise click.BadParameter(f"unknown fault kind {kind!r}; one of {', '.join(_FAULT_KINDS)}")
    return spec


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=int, show_default=True, help="0 picks a free port.")
@click.option("--tier", default=4, type=click.IntRange(1, 4), show_default=True)
@click.option("--rpm", type=int, default=None)
@click.option("--itpm", type=int, default=None)
@click.option("--otpm", type=int, default=None)
@click.option("--minute", type=float, default=60.0, show_default=True, help="Real seconds per emulated minute.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--latency", type=float, default=0.0, show_default=True, help="Seconds to first token.")
@click.option("--per-token", type=float, default=0.0, show_default=True, help="Seconds per output token.")
@click.option("--fault", "faults", multiple=True, help="KIND:PROB or KIND@START-END, repeatable.")
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
    faults: tuple[str, ...],
) -> None:
    """Run a local Anthropic + OpenAI API emulator with real rate limits."""
    import time

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
        faults=tuple(_parse_fault(f) for f in faults),
    )
    with run_emulator(config, host=host, port=port) as emu:
        click.echo(f"Emulator listening on {emu.base_url}")
        click.echo(f"export ANTHROPIC_BASE_URL={emu.base_url}")
        click.echo("export ANTHROPIC_API_KEY=emulator")
        click.echo(f"export OPENAI_BASE_URL={emu.openai_base_url}")
        click.echo("export OPENAI_API_KEY=emulator")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopping")
