"""The report as one self-contained HTML page (images inline as data URIs, no script, nothing fetched)."""

from __future__ import annotations

import datetime
from html import escape
from pathlib import Path

from .charts import data_uri, to_svg
from .data import ReportData
from .figures import FIGURES
from .why import Diagnosis

__all__ = ["render_page"]

_CSS = """
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; margin: 0;
       background: #f9fafb; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: #6b7280; margin: 0 0 16px; }
.why { background: #fff; border-left: 4px solid #2563eb; padding: 12px 16px; border-radius: 4px; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 16px 0; }
.tile { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.tile b { display: block; font-size: 18px; }
figure { margin: 0; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px; }
figure img { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
td, th { border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
code { font-size: 12px; }
"""


def _tiles(data: ReportData) -> str:
    c = data.counts
    runs = len(data.segments)
    seconds = sum(s.duration for s in data.segments)
    items = [
        ("succeeded", f"{c['done']:,}"),
        ("failed", f"{c['failed']:,}"),
        ("bad input lines", f"{c['invalid']:,}"),
        ("pending", f"{c['pending']:,}"),
        ("runs", f"{runs}"),
        ("time running", f"{seconds:,.0f} s"),
        ("cost", f"${data.cost:,.4f}" + (f" + {data.unpriced} unpriced" if data.unpriced else "")),
    ]
    return "".join(f'<div class="tile">{escape(k)}<b>{escape(v)}</b></div>' for k, v in items)


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if items else ""


def _errors_table(data: ReportData) -> str:
    rows = []
    for group in data.errors:
        examples = "<br>".join(
            escape(f"line {line}: " if line else "") + f"<code>{escape(cid)}</code> " + escape(msg)
            for line, cid, msg in group.examples
        )
        rows.append(f"<tr><td>{escape(group.kind)}</td><td>{group.count:,}</td><td>{examples}</td></tr>")
    for kind, messages in sorted(data.attempt_examples.items()):
        total = sum(getattr(p.row, kind, 0) for p in data.points) if kind in _ATTEMPT_COUNTERS else None
        shown = f"{total:,} attempts" if total is not None else "attempts"
        listed = "<br>".join(escape(m) for m in messages)
        rows.append(f"<tr><td>{escape(kind)} (retried)</td><td>{shown}</td><td>{listed}</td></tr>")
    if not rows:
        return "<p>No errors.</p>"
    return "<table><tr><th>kind</th><th>count</th><th>examples</th></tr>" + "".join(rows) + "</table>"


_ATTEMPT_COUNTERS = ("rate_limited", "overloaded", "server_errors")


def render_page(data: ReportData, diagnosis: Diagnosis) -> str:
    """The whole page as a string."""
    settings = data.settings
    started = (
        datetime.datetime.fromtimestamp(data.segments[0].started, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if data.segments
        else "no timeline recorded"
    )
    subtitle = " · ".join(
        escape(part)
        for part in (
            Path(settings.get("input", "")).name,  # the name only: a report is shared, its paths are not
            settings.get("provider", ""),
            settings.get("model", "") or "model per line",
            f"started {started}",
        )
        if part
    )
    figures = []
    for fig_id, (heading, make) in FIGURES.items():
        svg = to_svg(make(data))
        figures.append(
            f'<h2>{escape(heading)}</h2><figure id="chart-{fig_id}">'
            f'<img alt="{escape(heading)}" src="{data_uri(svg, "image/svg+xml")}"></figure>'
        )
    note = ""
    if not data.points:
        note = "<p>This job's store holds no timeline (it ran with an older version, or through a batch API).</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>sluicegate report: {escape(data.store.name)}</title><style>{_CSS}</style></head>
<body><main>
<h1>sluicegate run report</h1><p class="sub">{subtitle}</p>
<div class="tiles">{_tiles(data)}</div>
<section class="why" id="why"><h2 style="margin-top:0">Why it took this long</h2>
<p>{escape(diagnosis.paragraph)}</p>
{"<p><b>Faster:</b></p>" + _list(diagnosis.faster) if diagnosis.faster else ""}
{"<p><b>Cheaper:</b></p>" + _list(diagnosis.cheaper) if diagnosis.cheaper else ""}
</section>
{note}{"".join(figures)}
<h2>Errors with examples</h2><div id="errors-table">{_errors_table(data)}</div>
</main></body></html>
"""
