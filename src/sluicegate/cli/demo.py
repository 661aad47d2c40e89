"""`sluicegate demo`: the tutorials' benchmark against a local emulator, with no account and no configuration."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from sluicegate.demo.progress import DemoProgress

# Seconds between plain progress lines when the output is not a terminal (a log, a pipe, CI).
_LINE_EVERY = 5.0


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

    \b
    Example:
      sluicegate demo --quick --system gather --system sluicegate
    """
    from rich.console import Console

    from sluicegate.demo.progress import DemoProgress, SystemProgress, progress_line
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
    with _live(console, progress):
        rows = run_demo(settings, chosen, progress=progress)
    console.print(render_table(rows, settings))
    console.print("The emulator's answers are placeholder words tagged with their prompt's hash, not summaries.")


@contextlib.contextmanager
def _live(console: Console, progress: DemoProgress) -> Iterator[None]:
    """A live panel on a terminal; otherwise a plain line for the running system every few seconds."""
    from rich.live import Live

    from sluicegate.demo.progress import progress_line, progress_table

    if console.is_terminal:
        with Live(get_renderable=lambda: progress_table(progress.snapshot()), console=console, transient=True):
            yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(_LINE_EVERY):
            for state in progress.snapshot():
                if state.state == "running":
                    console.print(progress_line(state), highlight=False, soft_wrap=True)

    ticker = threading.Thread(target=tick, name="demo-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
