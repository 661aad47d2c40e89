"""A quick look at an input file's first line, to tell a CSV (or other non-JSONL) file before a line is read."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["not_jsonl"]

_CONVERT = (
    'python -c "import csv, json, sys; [print(json.dumps(row)) for row in csv.DictReader(open(sys.argv[1]))]" '
    "{path} > {stem}.jsonl"
)


def not_jsonl(path: Path) -> str | None:
    """Why `path` is surely not JSONL (a CSV or TSV header), with what to do; None when it may well be JSONL."""
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    first = next((line for line in head.splitlines() if line.strip()), b"").strip().removeprefix(b"\xef\xbb\xbf")
    if not first or first.startswith((b"{", b"[")):
        return None
    try:
        json.loads(first)
    except ValueError:
        pass
    else:
        return None  # a JSON value, just not an object: the reader names that per line
    tabular = path.suffix.lower() in (".csv", ".tsv") or b"," in first or b"\t" in first
    if not tabular:
        return None
    kind = "TSV" if path.suffix.lower() == ".tsv" or (b"\t" in first and b"," not in first) else "CSV"
    shown = first[:80].decode("utf-8", "replace")
    return (
        f"{path} looks like {kind} (first line: {shown!r}), but this command reads JSONL: one JSON object per line, "
        'such as {"id": "t-1", "prompt": "..."} or {"custom_id": "t-1", "params": {...}}. With columns named id '
        f"and prompt, convert it with: {_CONVERT.format(path=path, stem=path.with_suffix(''))}, or run the table "
        "itself by saying how a row becomes a prompt: --template 'Summarise: {prompt}' --id-column id"
    )
