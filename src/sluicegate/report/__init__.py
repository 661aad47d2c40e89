"""`sluicegate report`: a job's run report (HTML page, PNG summary) and the answer to 'why did it take this long?'."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .charts import to_png
from .data import ReportData, load
from .figures import summary_figure
from .page import render_page
from .why import Diagnosis, explain, profile

__all__ = ["ReportFiles", "diagnose", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """Where the report went, and its diagnosis."""

    html: Path
    png: Path
    diagnosis: Diagnosis


def diagnose(data: ReportData) -> Diagnosis:
    """The 'why' of a loaded job: its timeline summed over every run, then explained."""
    settings = data.settings
    max_tokens = settings.get("max_tokens") or ""
    p = profile(
        [(point.width, point.row) for point in data.points],
        batch=data.batch_items > 0 and data.batch_items >= data.counts["done"] // 2,
        max_tokens=int(max_tokens) if max_tokens.isdigit() else None,
        provider=settings.get("provider", "anthropic"),
    )
    return explain(p)


def write_report(store: Path, html: Path, png: Path) -> ReportFiles:
    """Read the job store at `store` and write the HTML page and the PNG summary."""
    data = load(store)
    diagnosis = diagnose(data)
    html.write_text(render_page(data, diagnosis), encoding="utf-8")
    png.write_bytes(to_png(summary_figure(data, diagnosis.paragraph.split(":")[0] + ": " + _bound_words(diagnosis))))
    return ReportFiles(html, png, diagnosis)


def _bound_words(diagnosis: Diagnosis) -> str:
    return {
        "requests": "bound by requests per minute",
        "input_tokens": "bound by input tokens per minute",
        "output_tokens": "bound by output tokens per minute",
        "tokens": "bound by tokens per minute",
        "concurrency": "bound by latency and concurrency",
        "rate_limited": "paused by the server's 429s",
        "none": "no rate limit bound it",
    }[diagnosis.bound]
