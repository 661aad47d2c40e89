"""Charts as self-contained SVG or PNG (matplotlib, no pyplot, no files, no network): plain series in, bytes out.

Nothing here knows about jobs or stores, so the gateway's dashboard can draw its own series with the same look.
Figures are built on `matplotlib.figure.Figure` directly (no global pyplot state), so drawing is safe in a server.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

__all__ = [
    "PALETTE",
    "Line",
    "bands",
    "bars",
    "data_uri",
    "histogram",
    "new_figure",
    "time_series",
    "to_png",
    "to_svg",
]

PALETTE = {
    "blue": "#2563eb",
    "orange": "#ea580c",
    "green": "#16a34a",
    "red": "#dc2626",
    "purple": "#7c3aed",
    "grey": "#6b7280",
    "teal": "#0d9488",
    "amber": "#d97706",
}

_STYLE: Any = {  # matplotlib types its rc keys as a closed Literal set
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "svg.fonttype": "path",  # text drawn as outlines: the picture needs no font on the reader's machine
    "svg.hashsalt": "sluicegate",  # stable ids, so the same data gives the same file
}


@dataclass(frozen=True)
class Line:
    """One series of a time chart: `kind` is "step" (a value per slot), "line", or "bar" (counts per slot)."""

    label: str
    values: Sequence[float | None]
    color: str = PALETTE["blue"]
    kind: str = "step"
    dashed: bool = False


def new_figure(width: float = 7.5, height: float = 2.6, rows: int = 1, cols: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure in the house style and its axes, row by row."""
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        grid = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for line in grid for ax in line]


def _verticals(ax: Axes, marks: Sequence[tuple[float, str]]) -> None:
    """Dotted vertical lines, each labelled at the top."""
    for at, label in marks:
        ax.axvline(at, color=PALETTE["grey"], linewidth=0.8, linestyle=":")
        ax.annotate(
            label,
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            fontsize=7,
            color=PALETTE["grey"],
        )


def time_series(
    ax: Axes,
    x: Sequence[float],
    widths: Sequence[float],
    lines: Sequence[Line],
    *,
    title: str,
    ylabel: str,
    marks: Sequence[tuple[float, str]] = (),
) -> None:
    """Series over time (x in seconds, one value per slot of `widths` seconds); `marks` draws labelled verticals."""
    with mpl.rc_context(_STYLE):
        for line in lines:
            xs = [a for a, v in zip(x, line.values, strict=True) if v is not None]
            ys = [float(v) for v in line.values if v is not None]
            ws = [w for w, v in zip(widths, line.values, strict=True) if v is not None]
            if not xs:
                continue
            style = "--" if line.dashed else "-"
            if line.kind == "bar":
                ax.bar(xs, ys, width=ws, align="edge", color=line.color, label=line.label, alpha=0.8, linewidth=0)
            elif line.kind == "step":
                ax.step(
                    [*xs, xs[-1] + ws[-1]],
                    [*ys, ys[-1]],
                    where="post",
                    color=line.color,
                    label=line.label,
                    linestyle=style,
                    linewidth=1.3,
                )
            else:
                ax.plot(
                    [a + w / 2 for a, w in zip(xs, ws, strict=True)],
                    ys,
                    color=line.color,
                    label=line.label,
                    linestyle=style,
                    linewidth=1.3,
                )
        _verticals(ax, marks)
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
        ax.set_xlabel("seconds of work")
        ax.set_ylim(bottom=0)
        if x:
            ax.set_xlim(min(x), max(a + w for a, w in zip(x, widths, strict=True)))
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


def bands(
    ax: Axes, x: Sequence[float], widths: Sequence[float], labels: Sequence[str | None], colors: Mapping[str, str]
) -> None:
    """Shade the background of each slot by its label (e.g. the binding limit), with one legend entry per label."""
    seen: set[str] = set()
    start = 0
    for i in range(1, len(labels) + 1):
        if i < len(labels) and labels[i] == labels[start] and abs(x[i - 1] + widths[i - 1] - x[i]) < 1e-9:
            continue
        label = labels[start]
        if label is not None:
            ax.axvspan(
                x[start],
                x[i - 1] + widths[i - 1],
                color=colors.get(label, PALETTE["grey"]),
                alpha=0.12,
                linewidth=0,
                label=None if label in seen else f"bound: {label}",
            )
            seen.add(label)
        start = i


def histogram(
    ax: Axes,
    edges: Sequence[float],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    title: str,
    xlabel: str,
    markers: Sequence[tuple[float, str]] = (),
) -> None:
    """Counts per bin (bins given by `edges`, len(counts) + 1, log-spaced) as outlined steps on a log axis."""
    with mpl.rc_context(_STYLE):
        drawn = False
        for label, counts, color in series:
            if not any(counts):
                continue
            ax.stairs(counts, edges, label=label, color=color, linewidth=1.3, fill=False)
            drawn = True
        _verticals(ax, markers)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("items")
        if drawn:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))


def bars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    colors: Sequence[str],
    *,
    title: str,
    fmt: str = "{:,.0f}",
) -> None:
    """Horizontal bars with their values written at their ends."""
    with mpl.rc_context(_STYLE):
        positions = list(range(len(labels)))[::-1]
        ax.barh(positions, values, color=colors, height=0.6)
        ax.set_yticks(positions, labels)
        top = max([abs(v) for v in values] or [1.0]) or 1.0
        for pos, value in zip(positions, values, strict=True):
            ax.annotate(
                fmt.format(value),
                (max(value, 0), pos),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(min(0.0, min(values, default=0.0)), top * 1.25)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.grid(axis="y", visible=False)
        ax.set_title(title, loc="left")


def to_svg(fig: Figure) -> bytes:
    """The figure as an SVG document (text as outlines, no external references)."""
    buffer = io.BytesIO()
    with mpl.rc_context(_STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as a PNG image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def data_uri(image: bytes, mime: str) -> str:
    """An inline `data:` URI for an <img> (no file, no request)."""
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
