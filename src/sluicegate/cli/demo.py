"""`sluicegate demo`: the tutorials' benchmark against a local emulator, with no account and no configuration."""

from __future__ import annotations

import click


@click.command()
@click.option("--documents", type=click.IntRange(1, 10_000), default=None, help="Documents to process [100].")
@click.option("--quick", is_flag=True, help="30 documents and a shorter time cap per system.")
@click.option(
    "--system",
    "systems",
    multiple=True,
    type=click.Choice(["sequential", "gather", "semaphore10", "semaphore20", "sluicegate"]),
    help="Run only these systems (repeatable); default: sequential, gather, semaphore10, sluicegate.",
)
def demo(documents: int | None, quick: bool, systems: tuple[str, ...]) -> None:
    """Compare the usual asyncio patterns with sluicegate on an emulated, rate-limited API.

    Example: sluicegate demo --quick
    """
    from rich.console import Console

    from sluicegate.demo.run import SYSTEMS, DemoSettings, Row, render_table, run_demo

    settings = DemoSettings(documents=documents or (30 if quick else 100), peer_cap=15.0 if quick else 40.0)
    console = Console()
    console.print(
        f"Starting a local API emulator ({settings.rpm} requests per minute, one emulated minute every "
        f"{settings.minute:g} s) and sending {settings.documents} documents with each approach in turn."
    )

    def progress(row: Row) -> None:
        console.print(f"  {row.label}: {row.status}, {row.wall:.1f} s")

    rows = run_demo(settings, systems or SYSTEMS, on_row=progress)
    console.print(render_table(rows, settings))
    console.print("Every answer is checked against its own prompt; '429s' are rate-limit refusals the API had to send.")
