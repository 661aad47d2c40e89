"""`sluicegate report OUT.jsonl`: write OUT.report.html and OUT.report.png from the job's store."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the page (default: OUTPUT with .report.html).",
)
@click.option(
    "--png",
    "png_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the summary picture (default: OUTPUT with .report.png).",
)
def report(output_path: Path, html_path: Path | None, png_path: Path | None) -> None:
    """Report on the job whose results are in OUTPUT (its store is OUTPUT.sluicegate.db): throughput against the
    rate limits, requests in flight, 429s and 5xx, latency, tokens and cost by kind, errors, and why it took as long
    as it did. The page is one self-contained HTML file: it loads nothing from the network.

    Example: sluicegate report results.jsonl
    """
    from sluicegate._exceptions import ConfigError
    from sluicegate.jobs.durable import store_path_for

    try:
        from sluicegate.report import write_report
    except ModuleNotFoundError as exc:  # the plots need the `report` extra
        if exc.name != "matplotlib":
            raise
        click.echo("Error: sluicegate report draws with matplotlib: pip install 'sluicegate[report]'", err=True)
        sys.exit(2)

    base = output_path.with_suffix("") if output_path.suffix == ".jsonl" else output_path
    html_path = html_path or base.with_name(base.name + ".report.html")
    png_path = png_path or base.with_name(base.name + ".report.png")
    try:
        files = write_report(store_path_for(output_path), html_path, png_path)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    click.echo(files.diagnosis.paragraph)
    click.echo(f"report: {files.html}", err=True)
    click.echo(f"summary picture: {files.png}", err=True)
