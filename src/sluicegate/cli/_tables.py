"""A table input (Parquet, CSV) read through `--template`: the spec the options ask for, shared by run/plan/estimate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sluicegate.jobs.tables import TableSpec


def table_spec(input_path: Path, template: str | None, id_column: str | None) -> TableSpec | None:
    """The template job `--template/--id-column` ask for, None for a JSONL job; a usage error (exit 2) when a
    table comes without a template or the template cannot work."""
    from sluicegate._exceptions import ConfigError
    from sluicegate.jobs.tables import TableSpec, is_table

    if template is None:
        if is_table(input_path):
            raise click.UsageError(_table_hint(input_path))
        if id_column is not None:
            raise click.UsageError("--id-column needs --template")
        return None
    try:
        return TableSpec(template=template, id_column=id_column)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--template") from exc


def _table_hint(path: Path) -> str:
    """What a table fed without --template looks like, and the options that run it."""
    from sluicegate.jobs.tables import column_names

    columns = column_names(path)
    kind = {".parquet": "Parquet", ".pq": "Parquet", ".tsv": "TSV"}.get(path.suffix.lower(), "CSV")
    text = next((c for c in columns if c.lower() in ("prompt", "text", "body")), columns[-1] if columns else "text")
    ids = next((c for c in columns if c.lower() in ("id", "custom_id") or c.lower().endswith("_id")), None)
    example = f"--template 'Summarise: {{{text}}}'" + (f" --id-column {ids}" if ids else "")
    return (
        f"{path.name} looks like {kind} ({'columns' if kind == 'Parquet' else 'first line'}: "
        f"{','.join(columns)[:80]!r}): run it as a table, saying how a row "
        f"becomes a prompt, e.g. {example} ({{column}} is filled from each row)"
    )
