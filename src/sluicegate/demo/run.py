"""The demo's core: one emulator, each system in turn on fresh limits, a comparison row per system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from sluicegate.demo.ours import run_sluicegate
from sluicegate.demo.peers import PEERS, Recorder
from sluicegate.demo.progress import DemoProgress
from sluicegate.demo.workload import make_documents, tally
from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator

__all__ = [
    "SYSTEMS",
    "DemoSettings",
    "Row",
    "capped",
    "emulator_config",
    "label_of",
    "render_table",
    "run_demo",
    "run_system",
]

SYSTEMS: tuple[str, ...] = ("sequential", "gather", "semaphore10", "sluicegate")
_API_KEY = "demo-key"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    """The demo's workload: like the tutorials' benchmark (100 documents, 1–10 s answers, 50 RPM) in fast time."""

    documents: int = 100
    rpm: int = 30
    itpm: int = 450_000
    otpm: int = 90_000
    minute: float = 2.0  # real seconds per emulated minute: 30x faster than real life
    burst: int | None = None  # a short-interval cap on top of the minute's (None: only the minute bucket)
    latency_low: float = 1.0  # emulated seconds per answer, before compression
    latency_high: float = 10.0
    peer_cap: float = 40.0  # real seconds any one system may take before it is reported as timed out
    seed: int = 0

    @property
    def time_scale(self) -> float:
        return self.minute / 60.0


@dataclass(frozen=True, slots=True)
class Row:
    """One system's line in the comparison table."""

    system: str
    label: str
    wall: float
    ok: int
    failed: int
    wrong: int
    missing: int
    rate_limited: int  # 429 answers the emulator sent to this system
    requests: int  # HTTP requests the emulator answered, retries included
    status: str  # "done", "timed out", or why the system could not run

    @property
    def per_second(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def answered(self) -> int:
        """Documents that got an answer, whether or not it belongs to them."""
        return self.ok + self.wrong


def emulator_config(settings: DemoSettings) -> EmulatorConfig:
    """Latency uniformly spread over [low, high] emulated seconds, compressed like the minute."""
    mid = (settings.latency_low + settings.latency_high) / 2
    spread = (settings.latency_high - settings.latency_low) / 2
    return EmulatorConfig(
        rpm=settings.rpm,
        itpm=settings.itpm,
        otpm=settings.otpm,
        minute=settings.minute,
        burst=settings.burst,
        seed=settings.seed,
        first_token_latency=mid * settings.time_scale,
        jitter=spread / mid if mid else 0.0,
    )


def label_of(system: str) -> str:
    """The name a system goes by in the table."""
    return PEERS[system][0] if system in PEERS else "sluicegate"


def run_system(
    system: str,
    docs: Sequence[dict[str, Any]],
    emu: RunningEmulator,
    settings: DemoSettings,
    progress: DemoProgress | None = None,
) -> Row:
    """Run one system on fresh emulator state and score it; never longer than `settings.peer_cap` (+ cleanup)."""
    emu.reset()
    label = label_of(system)
    rec = Recorder()
    if progress is not None:
        rec.listener = lambda outcome: progress.outcome(system, outcome)
        progress.rate_limited = lambda: _rate_limited(emu)
        progress.started(system)
    kwargs: dict[str, Any] = {"base_url": emu.base_url, "api_key": _API_KEY, "time_scale": settings.time_scale}
    status = "done"
    started = time.monotonic()
    try:
        if system == "sequential":
            PEERS[system][1](docs, rec, deadline=started + settings.peer_cap, **kwargs)
            if len(rec.outcomes) < len(docs):
                status = "timed out"
        else:
            if system == "sluicegate":
                coro = run_sluicegate(docs, rec, minute=settings.minute, **kwargs)
            else:
                coro = PEERS[system][1](docs, rec, **kwargs)
            status = asyncio.run(capped(coro, settings.peer_cap))
    except Exception as exc:  # a crashing system is a result to show, not a reason to stop the demo
        status = f"crashed: {type(exc).__name__}: {exc}"[:120]
    wall = time.monotonic() - started
    stats = emu.stats()["status"]
    t = tally(docs, rec.outcomes)
    rate_limited = int(stats.get("429", 0))
    if progress is not None:
        progress.rate_limited = None
        progress.finished(system, status, wall, rate_limited)
    return Row(
        system,
        label,
        wall,
        t.ok,
        t.failed,
        t.wrong,
        t.missing,
        rate_limited,
        sum(int(v) for v in stats.values()),
        status,
    )


def _rate_limited(emu: RunningEmulator) -> int:
    return int(emu.stats()["status"].get("429", 0))


async def capped(coro: Any, cap: float) -> str:
    """Run one system's coroutine for at most `cap` seconds: "done", or "timed out" (the run is cut there)."""
    try:
        # The demo's cap is on the wall, the same for every system it compares (the peers have no Clock).
        await asyncio.wait_for(coro, cap)  # noqa: TID251
    except TimeoutError:
        return "timed out"
    return "done"


def run_demo(
    settings: DemoSettings,
    systems: Sequence[str] = SYSTEMS,
    on_row: Callable[[Row], None] | None = None,
    progress: DemoProgress | None = None,
) -> list[Row]:
    """Run every system on the same documents against one emulator, one after the other.

    `progress`, when given, is told as each system starts, finishes a document, and stops.
    """
    docs = make_documents(settings.documents, seed=settings.seed)
    rows: list[Row] = []
    with run_emulator(emulator_config(settings)) as emu:
        for system in systems:
            row = run_system(system, docs, emu, settings, progress)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def render_table(rows: Sequence[Row], settings: DemoSettings) -> Group:
    """The tutorials' comparison table, counted: time, 429s, and per document answered, failed or missing."""
    scale = 1 / settings.time_scale
    # The request bucket starts full; after it, requests flow at rpm per emulated minute.
    ideal = max(0, settings.documents - (settings.burst or settings.rpm)) * settings.minute / settings.rpm
    allows = f"in about {ideal:.1f} s" if ideal > 0 else "at once"
    notes = [
        f"The rate limit allows all {settings.documents} {allows}, plus one answer's latency; only a system that "
        f"gives some up can finish sooner. Times are compressed: {scale:g} s of a real account's time pass in each "
        "second here.",
        "failed: the code got an error for the document. missing: neither an answer nor an error.",
        "matched: every answer received begins with the tag of its own document's prompt (no mix-ups).",
    ]
    for row in rows:
        if row.status == "timed out":
            notes.append(
                f"* {row.label} was stopped at the {settings.peer_cap:g} s cap; unfinished documents are missing."
            )
        elif row.status != "done":
            notes.append(f"{row.label}: {row.status}")
    table = Table(
        title=(
            f"{settings.documents} documents, {settings.rpm} RPM, answers in {settings.latency_low:g}–"
            f"{settings.latency_high:g} s, time {scale:g}x faster than real"
        ),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("approach", no_wrap=True)
    table.add_column("wall s", justify="right")
    table.add_column("429s", justify="right")
    table.add_column("answered", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("missing", justify="right")
    table.add_column("matched", no_wrap=True)
    for row in rows:
        if row.wall == 0 and row.status != "done":
            table.add_row(row.label, *["-"] * 7)
            continue
        table.add_row(
            row.label,
            f"{row.wall:.1f}" + ("*" if row.status != "done" else ""),
            str(row.rate_limited),
            str(row.answered),
            _count(row.failed),
            _count(row.missing),
            _matched(row),
        )
    return Group(table, Text("\n".join(notes)))


def _count(n: int) -> str:
    return f"[red]{n}[/red]" if n else "0"


def _matched(row: Row) -> str:
    if row.answered == 0:
        return "-"
    return "yes" if row.wrong == 0 else f"[red]{row.wrong} wrong[/red]"
