"""`sluicegate demo`: the tutorials' benchmark against a local emulator, with no account and no configuration."""

from __future__ import annotations

import click

_SHORT_HELP = "Race the usual asyncio snippets against sluicegate on a local API."


@click.command(short_help=_SHORT_HELP)
@click.option(
    "--documents",
    type=click.IntRange(1, 10_000),
    default=None,
    help="How many documents each approach sends [default: 100, or 30 with --quick].",
)
@click.option("--quick", is_flag=True, help="30 documents and a 15 s time cap per approach instead of 40 s.")
@click.option(
    "--system",
    "systems",
    multiple=True,
    type=click.Choice(["sequential", "gather", "semaphore10", "semaphore20", "sluicegate"]),
    help="Run only this approach (repeatable) [default: sequential, gather, semaphore10, sluicegate].",
)
def demo(documents: int | None, quick: bool, systems: tuple[str, ...]) -> None:
    """Compare the usual asyncio snippets with sluicegate on an emulated, rate-limited API.

    Each approach sends the same documents, on fresh limits, to a local emulator of the Anthropic API (no
    account or key; nothing leaves 127.0.0.1). The table counts, per approach: documents answered, failed,
    and missing (dropped without an error), the 429s met, the wall time, and whether every answer belongs
    to its own document.

    Example: sluicegate demo --quick --system gather --system sluicegate
    """
    from rich.console import Console

    from sluicegate.demo.progress import DemoProgress, SystemProgress, progress_line, shown
    from sluicegate.demo.run import SYSTEMS, DemoSettings, label_of, render_table, run_demo

    settings = DemoSettings(documents=documents or (30 if quick else 100), peer_cap=15.0 if quick else 40.0)
    chosen = systems or SYSTEMS
    console = Console()
    console.print(
        f"Starting a local API emulator ({settings.rpm} requests per minute, one emulated minute every "
        f"{settings.minute:g} s) and sending {settings.documents} documents with each approach in turn "
        f"(at most {settings.peer_cap:g} s each)."
    )

    def on_change(state: SystemProgress) -> None:
        # Starts and stops are always printed; on a terminal the live panel shows the rest.
        if state.state != "running" or state.done == 0:
            console.print(progress_line(state), highlight=False, soft_wrap=True)

    progress = DemoProgress([(s, label_of(s)) for s in chosen], settings.documents, on_change=on_change)
    with shown(progress, console):
        rows = run_demo(settings, chosen, progress=progress)
    console.print(render_table(rows, settings))
    console.print("The emulator's answers are placeholder words tagged with their prompt's hash, not summaries.")
