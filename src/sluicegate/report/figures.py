"""The report's figures, drawn from a ReportData with the shared chart primitives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..jobs.timeline_rows import LATENCY_BINS, Row, bin_lower
from ..pricing import default_table
from .charts import PALETTE, Line, bands, bars, histogram, new_figure, time_series
from .data import Point, ReportData

__all__ = ["FIGURES", "binding_of", "percentile", "summary_figure"]

_BINDING_COLORS = {
    "requests": PALETTE["blue"],
    "input_tokens": PALETTE["green"],
    "output_tokens": PALETTE["purple"],
    "tokens": PALETTE["teal"],
    "concurrency": PALETTE["orange"],
    "cooldown": PALETTE["red"],
}


def binding_of(row: Row) -> str | None:
    """The gate admission waited for in most of the row's samples, when it waited in at least half of them."""
    if not row.samples or row.waiting_samples * 2 < row.samples or not row.binding:
        return None
    return max(row.binding, key=lambda k: row.binding[k])


def _ceilings(points: Sequence[Point]) -> dict[str, list[float | None]]:
    """Items/s each known limit allows at each point, from the job's running averages up to that point."""
    out: dict[str, list[float | None]] = {"requests": [], "input_tokens": [], "output_tokens": []}
    done = attempts = tokens_in = tokens_out = 0
    for p in points:
        r = p.row
        done += r.succeeded
        attempts += r.admitted
        tokens_in += r.input_tokens + r.cache_write_tokens
        tokens_out += r.output_tokens
        n = max(done, 1)
        out["requests"].append(r.rpm / 60 / max(attempts / n, 1.0) if r.rpm and done else None)
        out["input_tokens"].append(r.itpm / 60 / (tokens_in / n) if r.itpm and tokens_in else None)
        out["output_tokens"].append(r.otpm / 60 / (tokens_out / n) if r.otpm and tokens_out else None)
    return out


def _axis(data: ReportData) -> tuple[list[float], list[float], list[tuple[float, str]]]:
    x = [p.x for p in data.points]
    widths = [p.width for p in data.points]
    marks = []
    if len(data.run_starts) > 1:
        marks = [(at, f"run {i}" + (" (resumed)" if i > 1 else "")) for i, at in enumerate(data.run_starts, 1)]
    return x, widths, marks


def throughput(ax: Axes, data: ReportData) -> None:
    """Completions per second against the ceiling each limit allows; the background shows the binding gate."""
    x, widths, marks = _axis(data)
    rows = [p.row for p in data.points]
    ceilings = _ceilings(data.points)
    done = [r.succeeded / w for r, w in zip(rows, widths, strict=True)]
    last = {name: [v for v in values if v is not None][-1] for name, values in ceilings.items() if any(values)}
    # The chart is about the lowest ceiling: higher ones leave the top (and say so) rather than flatten everything.
    top = 1.6 * max(max(done, default=0.0), min(last.values(), default=0.0))
    lines = [Line("completed/s", done, PALETTE["blue"])]
    styles = {"requests": "RPM", "input_tokens": "ITPM", "output_tokens": "OTPM"}
    for name, label in styles.items():
        if name in last:
            above = f" ({last[name]:,.0f}/s, above the chart)" if top and last[name] > top else ""
            lines.append(Line(f"ceiling by {label}{above}", ceilings[name], _BINDING_COLORS[name], "line", True))
    bands(ax, x, widths, [binding_of(r) for r in rows], _BINDING_COLORS)
    time_series(
        ax,
        x,
        widths,
        lines,
        title="Throughput against the ceilings (shaded: the binding limit)",
        ylabel="items per second",
        marks=marks,
    )
    if top > 0:
        ax.set_ylim(0, top)


def in_flight(ax: Axes, data: ReportData) -> None:
    """Peak requests in flight per slot against the concurrency limit the limiter set."""
    x, widths, marks = _axis(data)
    rows = [p.row for p in data.points]
    peak = max((r.in_flight_max for r in rows), default=0)
    limit = max((r.concurrency or 0 for r in rows), default=0)
    # A limit far above what was ever in flight (a cap the rate limits never let the job reach) would flatten the
    # line that matters: it leaves the top and says so.
    top = 2.0 * peak if peak and limit > 2.0 * peak else 0.0
    label = f"concurrency limit (up to {limit:,}, above the chart)" if top else "concurrency limit"
    lines = [
        Line("in flight (peak)", [float(r.in_flight_max) for r in rows], PALETTE["teal"]),
        Line(label, [r.concurrency for r in rows], PALETTE["grey"], dashed=True),
    ]
    time_series(ax, x, widths, lines, title="Requests in flight", ylabel="requests", marks=marks)
    if top:
        ax.set_ylim(0, top)


def failures(ax: Axes, data: ReportData) -> None:
    """429, 529 and other 5xx answers per second (each was retried unless its item gave up)."""
    x, widths, marks = _axis(data)
    rows = [p.row for p in data.points]

    def rate(name: str) -> list[float | None]:
        return [getattr(r, name) / w for r, w in zip(rows, widths, strict=True)]

    lines = [
        Line("429 rate limited", rate("rate_limited"), PALETTE["red"]),
        Line("529 overloaded", rate("overloaded"), PALETTE["amber"]),
        Line("other 5xx", rate("server_errors"), PALETTE["purple"]),
        Line("connection/timeouts", rate("other_failures"), PALETTE["grey"]),
    ]
    time_series(ax, x, widths, lines, title="429s and 5xx over time", ylabel="answers per second", marks=marks)


def percentile(counts: Counter[int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, at the upper edge of its bin."""
    total = sum(counts.values())
    if not total:
        return None
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= q * total:
            return bin_lower(b + 1)
    return bin_lower(max(counts) + 1)


def latency(ax: Axes, data: ReportData) -> None:
    """Distribution of time to first token and total time per item, with percentiles of the total."""
    total: Counter[int] = Counter()
    first: Counter[int] = Counter()
    for p in data.points:
        total.update(p.row.latency)
        first.update(p.row.ttft)
    edges = [bin_lower(i) for i in range(LATENCY_BINS + 1)]
    edges[0] = edges[1] / 2  # a log axis has no 0
    series = [
        ("time to first token", [float(first[i]) for i in range(LATENCY_BINS)], PALETTE["orange"]),
        ("total (incl. retries)", [float(total[i]) for i in range(LATENCY_BINS)], PALETTE["blue"]),
    ]
    markers = [(v, f"p{int(q * 100)} {v:.2g} s") for q in (0.5, 0.99) if (v := percentile(total, q)) is not None]
    histogram(ax, edges, series, title="Latency per item", xlabel="seconds (log scale)", markers=markers)
    used = [i for i in range(LATENCY_BINS) if total[i] or first[i]]
    if used:
        ax.set_xlim(edges[max(0, min(used) - 1)], edges[min(LATENCY_BINS, max(used) + 2)])


def cost_parts(data: ReportData) -> list[tuple[str, float]]:
    """Cost by kind (USD) over every run; the batch discount is what the Batch API saved (shown negative)."""
    rows = [p.row for p in data.points]
    parts = [
        ("input", sum(r.cost_input for r in rows)),
        ("output", sum(r.cost_output for r in rows)),
        ("cache write", sum(r.cost_cache_write for r in rows)),
        ("cache read", sum(r.cost_cache_read for r in rows)),
    ]
    rate = default_table().batch_discount
    saved = data.batch_cost * (1 / rate - 1) if rate > 0 else 0.0
    return [*parts, ("batch discount", -saved if saved else 0.0)]


def tokens_and_cost(axes: Sequence[Axes], data: ReportData) -> None:
    """Tokens by kind, and cost by kind."""
    t = data.tokens
    bars(
        axes[0],
        ["input", "output", "cache write", "cache read"],
        [t["input"], t["output"], t["cache_write"], t["cache_read"]],
        [PALETTE["green"], PALETTE["purple"], PALETTE["amber"], PALETTE["teal"]],
        title="Tokens by kind",
    )
    cost(axes[1], data)


def cost(ax: Axes, data: ReportData) -> None:
    """Cost by kind, with the total in the title."""
    parts = cost_parts(data)
    bars(
        ax,
        [k for k, _ in parts],
        [v for _, v in parts],
        [PALETTE["green"], PALETTE["purple"], PALETTE["amber"], PALETTE["teal"], PALETTE["grey"]],
        title=f"Cost by kind (total ${data.cost:,.4f})",
        fmt="${:,.4f}",
    )


def errors(ax: Axes, data: ReportData) -> None:
    """Failed attempts that were retried (by kind), and items that ended in error (by the API's error type)."""
    rows = [p.row for p in data.points]
    labels = ["429 (retried)", "529 (retried)", "5xx (retried)", "transport (retried)"]
    values = [
        float(sum(getattr(r, n) for r in rows))
        for n in ("rate_limited", "overloaded", "server_errors", "other_failures")
    ]
    colors = [PALETTE["red"], PALETTE["amber"], PALETTE["purple"], PALETTE["grey"]]
    for group in data.errors:
        labels.append(f"{group.kind} (final)")
        values.append(float(group.count))
        colors.append(PALETTE["orange"])
    bars(ax, labels, values, colors, title="Errors by kind")


def _one(draw: Callable[[Axes, ReportData], None], height: float = 2.6) -> Callable[[ReportData], Figure]:
    def make(data: ReportData) -> Figure:
        fig, (ax,) = new_figure(height=height)
        draw(ax, data)
        return fig

    return make


def _tokens_cost_figure(data: ReportData) -> Figure:
    fig, axes = new_figure(height=2.2, cols=2)
    tokens_and_cost(axes, data)
    return fig


# id -> (heading, figure maker), in the report's order.
FIGURES: dict[str, tuple[str, Callable[[ReportData], Figure]]] = {
    "throughput": ("Throughput, ceilings and the binding limit", _one(throughput, 3.0)),
    "in-flight": ("Requests in flight", _one(in_flight)),
    "failures": ("429s and 5xx over time", _one(failures)),
    "latency": ("Latency distribution", _one(latency)),
    "tokens-cost": ("Tokens and cost by kind", _tokens_cost_figure),
    "errors": ("Errors by kind", _one(errors, 2.4)),
}


def summary_figure(data: ReportData, headline: str) -> Figure:
    """The one-picture summary (the PNG): throughput, in flight, failures, latency, cost and errors."""
    fig, axes = new_figure(width=13.0, height=9.0, rows=3, cols=2)
    throughput(axes[0], data)
    in_flight(axes[1], data)
    failures(axes[2], data)
    latency(axes[3], data)
    cost(axes[4], data)
    errors(axes[5], data)
    fig.suptitle(headline, x=0.01, ha="left", fontsize=11, fontweight="bold")
    return fig
