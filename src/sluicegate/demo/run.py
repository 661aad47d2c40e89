"""The demo's core: one emulator, each system in turn on fresh limits, a comparison row per system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from sluicegate.demo.ours import run_sluicegate
from sluicegate.demo.peers import PEERS, Recorder
from sluicegate.demo.workload import make_documents, tally
from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator

__all__ = ["SYSTEMS", "DemoSettings", "Row", "capped", "emulator_config", "render_table", "run_demo", "run_system"]

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


def run_system(system: str, docs: Sequence[dict[str, Any]], emu: RunningEmulator, settings: DemoSettings) -> Row:
    """Run one system on fresh emulator state and score it; never longer than `settings.peer_cap` (+ cleanup)."""
    emu.reset()
    label = PEERS[system][0] if system in PEERS else "sluicegate"
    rec = Recorder()
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
    return Row(
        system,
        label,
        wall,
        t.ok,
        t.failed,
        t.wrong,
        t.missing,
        int(stats.get("429", 0)),
        sum(int(v) for v in stats.values()),
        status,
    )


async def capped(coro: Any, cap: float) -> str:
    """Run one system's coroutine for at most `cap` seconds: "done", or "timed out" (the run is cut there)."""
    try:
        await asyncio.wait_for(coro, cap)
    except TimeoutError:
        return "timed out"
    return "done"


def run_demo(
    settings: DemoSettings,
    systems: Sequence[str] = SYSTEMS,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Run every system on the same documents against one emulator, one after the other."""
    docs = make_documents(settings.documents, seed=settings.seed)
    rows: list[Row] = []
    with run_emulator(emulator_config(settings)) as emu:
        for system in systems:
            row = run_system(system, docs, emu, settings)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def render_table(rows: Sequence[Row], settings: DemoSettings) -> Table:
    """The tutorials' benchmark table: wall time, throughput, 429s, failures, wrong or missing answers."""
    scale = 1 / settings.time_scale
    # The request bucket starts full; after it, requests flow at rpm per emulated minute.
    ideal = max(0, settings.documents - (settings.burst or settings.rpm)) * settings.minute / settings.rpm
    table = Table(
        title=(
            f"{settings.documents} documents, {settings.rpm} RPM, answers in {settings.latency_low:g}–"
            f"{settings.latency_high:g} s (emulator time runs {scale:g}x faster than real time)"
        ),
        caption=f"The rate limit allows all {settings.documents} in about {ideal:.1f} s plus one answer's latency.",
    )
    table.add_column("system")
    table.add_column("wall s", justify="right")
    table.add_column("real-life", justify="right")
    table.add_column("done/s", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("429s", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("wrong/lost", justify="right")
    table.add_column("status")
    for row in rows:
        if row.wall == 0 and row.status != "done":
            table.add_row(row.label, "-", "-", "-", "-", "-", "-", "-", row.status)
            continue
        table.add_row(
            row.label,
            f"{row.wall:.1f}",
            _human(row.wall * scale),
            f"{row.per_second:.1f}",
            str(row.requests),
            str(row.rate_limited),
            str(row.failed),
            f"{row.wrong}/{row.missing}",
            row.status,
        )
    return table


def _human(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
