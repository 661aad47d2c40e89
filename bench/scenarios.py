"""The benchmark's scenarios: emulator settings, the generated workload and which systems run, full and quick."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from sluicegate.emulator import EmulatorConfig, FaultSpec

THROUGHPUT_SYSTEMS: tuple[str, ...] = (
    "sequential",
    "gather",
    "semaphore10",
    "semaphore20",
    "langchain",
    "litellm",
    "sluicegate_given",
    "sluicegate_learn",
    "sdk_dropin",
)
# The for loop is latency-bound by design; on the big workloads it would only hit its time cap.
FAST_SYSTEMS: tuple[str, ...] = tuple(s for s in THROUGHPUT_SYSTEMS if s != "sequential")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One workload against one emulator configuration."""

    name: str
    summary: str
    documents: int
    quick_documents: int
    rpm: int
    itpm: int
    otpm: int
    minute: float  # real seconds per emulated minute
    burst: int | None = None
    latency: tuple[float, float] = (1.0, 10.0)  # emulated seconds per answer, uniformly spread
    per_token: float = 0.0  # emulated seconds per output token
    words: int = 120  # prompt length
    max_tokens: int = 256
    output_tokens: tuple[int, int] = (8, 64)
    faults: tuple[FaultSpec, ...] = ()
    quick_faults: tuple[FaultSpec, ...] = ()
    systems: tuple[str, ...] = FAST_SYSTEMS
    cap: float = 120.0  # real seconds one system may take
    quick_cap: float = 45.0
    concurrency: int = 32  # max_concurrency for the library peers that need one
    engine_max_concurrency: int | None = None  # sluicegate's max_concurrency (None: its own choice)
    output_accounting: Literal["produced", "reserved"] = "produced"
    headers_counted: Literal["end", "admission"] = "end"  # when the emulator counts each answer's headers
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def time_scale(self) -> float:
        return self.minute / 60.0

    def emulator(self, quick: bool, seed: int) -> EmulatorConfig:
        """The emulator configuration of this scenario."""
        low, high = self.latency
        mid, spread = (low + high) / 2, (high - low) / 2
        return EmulatorConfig(
            rpm=self.rpm,
            itpm=self.itpm,
            otpm=self.otpm,
            minute=self.minute,
            burst=self.burst,
            seed=seed,
            first_token_latency=mid * self.time_scale,
            per_token_latency=self.per_token * self.time_scale,
            jitter=spread / mid if mid else 0.0,
            min_output_tokens=self.output_tokens[0],
            max_output_tokens=self.output_tokens[1],
            faults=self.quick_faults if quick and self.quick_faults else self.faults,
            output_accounting=self.output_accounting,
            headers_counted=self.headers_counted,
        )

    def real_limits(self) -> tuple[float, float, float]:
        """The limits per real minute (what wall-clock rate limiters must be told)."""
        factor = 60.0 / self.minute
        return (self.rpm * factor, self.itpm * factor, self.otpm * factor)


def _faults(start: float) -> tuple[FaultSpec, ...]:
    return (
        FaultSpec(kind="overloaded", start=start, end=start + 10.0),
        FaultSpec(kind="overloaded", probability=0.05),
        FaultSpec(kind="api_error", probability=0.02),
        FaultSpec(kind="reset", probability=0.01),
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="seed100",
            summary="the demo's workload: answers in 1–10 s, 30 RPM binding, 30x time",
            documents=100,
            quick_documents=100,
            rpm=30,
            itpm=450_000,
            otpm=90_000,
            minute=2.0,
            systems=THROUGHPUT_SYSTEMS,
            cap=60.0,
            quick_cap=40.0,
        ),
        Scenario(
            name="short_interval",
            summary=(
                "seed100 at 50 RPM, the limit also enforced over short intervals (burst of 5), as the API does; "
                "retry-after is whole real seconds, i.e. 30 emulated seconds here, which over-penalizes clients "
                "that honor it compared with real time"
            ),
            documents=100,
            quick_documents=100,
            rpm=50,
            itpm=450_000,
            otpm=90_000,
            minute=2.0,
            burst=5,
            cap=60.0,
            quick_cap=40.0,
        ),
        Scenario(
            name="rpm_bound",
            summary="short prompts, 120 RPM binding, answers in 1–10 s, 10x time",
            documents=1_000,
            quick_documents=400,
            rpm=120,
            itpm=2_000_000,
            otpm=400_000,
            minute=6.0,
        ),
        Scenario(
            name="rpm_bound_60s",
            summary=(
                "rpm_bound in real time (a 60 s minute): 200 RPM binding, answers in 1–10 s; the client must learn "
                "a minute from the headers where the other scenarios' minutes are a few seconds"
            ),
            documents=600,
            quick_documents=300,
            rpm=200,
            itpm=2_000_000,
            otpm=400_000,
            minute=60.0,
            cap=240.0,
            quick_cap=90.0,
        ),
        Scenario(
            name="itpm_bound",
            summary="long prompts (~3,000 tokens), 300k ITPM binding, 6x time",
            documents=500,
            quick_documents=250,
            rpm=4_000,
            itpm=300_000,
            otpm=400_000,
            minute=10.0,
            words=1_700,
        ),
        Scenario(
            name="otpm_bound",
            summary=(
                "short prompts, long answers (400–800 tokens, max_tokens 1024), 40k OTPM binding, 6x time; OTPM "
                "estimated from max_tokens at admission and settled at the end (the API's 2024–2025 documented "
                "accounting: with output counted only as produced, nothing stops a client from admitting everything "
                "at once)"
            ),
            documents=350,
            quick_documents=150,
            rpm=4_000,
            itpm=2_000_000,
            otpm=40_000,
            minute=10.0,
            latency=(0.5, 1.5),
            per_token=0.01,
            max_tokens=1024,
            output_tokens=(400, 800),
            output_accounting="reserved",
        ),
        Scenario(
            name="faults",
            summary="rpm_bound plus 5% 529, 2% 500, 1% connection resets and a 10 s all-529 window",
            documents=1_000,
            quick_documents=400,
            rpm=120,
            itpm=2_000_000,
            otpm=400_000,
            minute=6.0,
            faults=_faults(10.0),
            quick_faults=_faults(3.0),
        ),
        Scenario(
            name="overhead",
            summary=(
                "zero latency, limits far above demand: client CPU per request of a bare AsyncAnthropic loop "
                "under Semaphore(32), of a plain synchronous Anthropic for loop, of sluicegate with "
                "max_concurrency=32 (Engine.as_completed on the caller's asyncio loop, and sluicegate.run from plain "
                "code) and of the SDK drop-in with max_concurrency=32 (child process resource usage)"
            ),
            documents=4_000,
            quick_documents=1_500,
            rpm=10_000_000,
            itpm=1_000_000_000,
            otpm=1_000_000_000,
            minute=60.0,
            latency=(0.0, 0.0),
            systems=("bare_loop", "sequential", "sluicegate_given", "sluicegate_sync", "sdk_dropin"),
            engine_max_concurrency=32,
        ),
    )
}

ALL_SCENARIOS: tuple[str, ...] = (*SCENARIOS, "memory", "resume")


def with_minute(
    scenario: Scenario, minute: float | None, documents: int | None, *, counted_at_admission: bool = False
) -> Scenario:
    """`scenario` with the emulator's minute set to `minute` real seconds and/or `documents` documents, and/or
    the emulator counting each answer's rate-limit headers at the request's admission instead of its end.

    The limits stay per emulated minute and every latency stays in emulated seconds, so only the clock's speed
    changes; the time caps grow with it. The variant gets its own name (and is registered under it) so its
    results sit beside the scenario's own instead of replacing them.
    """
    if minute is None and documents is None and not counted_at_admission:
        return scenario
    minute = minute or scenario.minute
    factor = minute / scenario.minute
    suffix = (
        (f"_minute{minute:g}s" if minute != scenario.minute else "")
        + (f"_{documents}docs" if documents else "")
        + ("_admission" if counted_at_admission else "")
    )
    rescaled = minute != scenario.minute or documents is not None
    summary = scenario.summary + (f"; variant: one emulated minute = {minute:g} real s" if rescaled else "")
    if counted_at_admission:
        summary += "; headers counted at admission"
    variant = replace(
        scenario,
        name=scenario.name + suffix,
        summary=summary,
        minute=minute,
        documents=documents or scenario.documents,
        quick_documents=documents or scenario.quick_documents,
        cap=scenario.cap * max(1.0, factor),
        quick_cap=scenario.quick_cap * max(1.0, factor),
        headers_counted="admission" if counted_at_admission else scenario.headers_counted,
    )
    SCENARIOS[variant.name] = variant
    return variant


_VARIANT = re.compile(
    r"^(?P<base>.+?)(?:_minute(?P<minute>[0-9.]+)s)?(?:_(?P<docs>[0-9]+)docs)?(?P<admission>_admission)?$"
)


def scenario_named(name: str) -> Scenario | None:
    """The scenario called `name`, a `with_minute` variant included (its name says its minute and documents)."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    match = _VARIANT.match(name)
    base = SCENARIOS.get(match["base"]) if match else None
    if match is None or base is None:
        return None
    minute, docs = match["minute"], match["docs"]
    return with_minute(
        base,
        float(minute) if minute else None,
        int(docs) if docs else None,
        counted_at_admission=bool(match["admission"]),
    )
