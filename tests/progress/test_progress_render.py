"""Renderers: the live panel, the plain log line, the summary table and the text formatters."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from progress_helpers import at, failed, ok
from rich.console import Console, RenderableType

from sluicegate._events import AttemptFailed, CooldownStarted, LimitsObserved, RunAborted
from sluicegate._models import BucketView, RateLimitSnapshot, Usage
from sluicegate._stats import EngineStatistics, LimiterStatistics
from sluicegate.progress import (
    ProgressSnapshot,
    ProgressTracker,
    Utilization,
    render_live,
    render_plain,
    render_summary,
    utilization,
)
from sluicegate.progress._format import format_cost, format_count, format_duration, format_kinds
from sluicegate.progress._render import best_possible
from sluicegate.testing import FakeClock

STATS = EngineStatistics(
    in_flight=5,
    limiter=LimiterStatistics(
        in_flight=5,
        concurrency_limit=16,
        requests_per_minute=1000,
        input_tokens_per_minute=50_000,
        output_tokens_per_minute=8_000,
        binding="input_tokens",
    ),
)


def _text(renderable: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=100, force_terminal=False, color_system=None)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def _fail(tracker: ProgressTracker, reason: str, status: int, *, retry: bool = True) -> None:
    tracker(AttemptFailed(at=1.0, index=0, custom_id="a", attempt=1, reason=reason, status=status,
                          will_retry=retry, delay=1.0))  # fmt: skip


def _busy_run(clock: FakeClock, *, price_known: bool = True) -> ProgressTracker:
    """60 s at 10 completions/s of 72 input and 10 output tokens each, some retries, one failure."""
    tracker = ProgressTracker(clock=clock, total=2000, price_known=price_known)
    tracker(failed(0.5, "server"))  # in the first second, so out of the window at t=60
    for second in range(60):
        for _ in range(10):
            tracker(ok(second + 0.5, usage=Usage(input_tokens=72, output_tokens=10), cost=0.0625))
    _fail(tracker, "rate_limited", 429)
    _fail(tracker, "rate_limited", 429)
    _fail(tracker, "overloaded", 529)
    _fail(tracker, "server", 500, retry=False)
    at(clock, 60.0)
    return tracker


def test_plain_line_format(clock: FakeClock) -> None:
    """The plain log line shows progress, rates against limits, binding, in-flight, errors, cost and ETA."""
    snap = _busy_run(clock).snapshot(STATS)
    assert render_plain(snap) == (
        "[1m00s] 601/2,000 (30.1%) | 10.0/s | in 43.2k/50k tpm | out 6k/8k tpm | binding: input_tokens"
        " | in flight 5 (at most 16) | 429s 2 | 529s 1 | failed 1 | cost $37.50 (proj $124.79) | eta 2m20s"
    )


def test_plain_line_without_statistics_or_total(clock: FakeClock) -> None:
    """Without engine statistics or a total, header limits are used and the ETA is unknown."""
    tracker = ProgressTracker(clock=clock, price_known=False)
    tracker(LimitsObserved(at=0.0, snapshot=RateLimitSnapshot(output_tokens=BucketView(8000, 10, 1.0))))
    tracker(ok(0.5, usage=Usage(output_tokens=40)))
    at(clock, 2.0)
    assert render_plain(tracker.snapshot()) == (
        "[2s] 1 done | 0.50/s | in 0 tpm | out 1.2k/8k tpm | binding: none | in flight 0 | 429s 0 | 529s 0"
        " | failed 0 | cost unknown | eta --"
    )


def test_live_panel_content(clock: FakeClock) -> None:
    """The live panel names the binding limit, the 429/529 counts, in-flight, cost, projection and ETA."""
    text = _text(render_live(_busy_run(clock).snapshot(STATS)))
    for expected in [
        "601/2,000 (30.1%)",
        "10.0/s",
        "in 43.2k/50k tpm",
        "out 6k/8k tpm",
        "binding: input_tokens",
        "requests limit 1k/min",
        "in flight 5 (at most 16)",
        "429s 2",
        "529s 1",
        "other failed attempts: server 1",
        "failed: server 1",
        "cost $37.50 (proj $124.79)",
        "eta 2m20s",
    ]:
        assert expected in text, expected


def test_live_panel_shows_cooldown_unknown_cost_and_abort(clock: FakeClock) -> None:
    """A running 429 cooldown is the binding gate; unknown prices read 'unknown'; an abort is shown."""
    tracker = _busy_run(clock, price_known=False)
    tracker(CooldownStarted(at=60.0, until=65.0))
    tracker(RunAborted(at=60.0, reason="spend cap reached"))
    text = _text(render_live(tracker.snapshot(STATS)))
    assert "binding: cooldown" in text
    assert "cost unknown" in text
    assert "aborted: spend cap reached" in text


def _utilization_case(clock: FakeClock) -> ProgressSnapshot:
    """50 requests of 200 rate-limited input tokens in 125 s under 60 RPM and 6,000 ITPM."""
    tracker = ProgressTracker(clock=clock, total=52)
    usage = Usage(input_tokens=150, cache_creation_input_tokens=50, cache_read_input_tokens=1000, output_tokens=10)
    for i in range(50):
        tracker(ok(float(i), index=i, usage=usage, cost=0.5))
    tracker(failed(1.0, "invalid_request", attempts=0))
    tracker(failed(1.0, "aborted", attempts=0))
    _fail(tracker, "rate_limited", 429)
    at(clock, 125.0)
    stats = EngineStatistics(limiter=LimiterStatistics(requests_per_minute=60, input_tokens_per_minute=6000))
    return tracker.snapshot(stats)


def test_utilization_of_the_ceiling(clock: FakeClock) -> None:
    """Ceiling = min(RPM/60, ITPM/60/avg_in): 0.4/s achieved of 0.5/s bound by input tokens is 80%."""
    util = utilization(_utilization_case(clock), 125.0)
    assert util == Utilization(achieved=0.4, ceiling=0.5, limit="input_tokens")
    assert util is not None
    assert util.fraction == 0.8


def test_summary_table(clock: FakeClock) -> None:
    """The summary lists counts, wall time, tokens, cache, cost, retries and the utilization figure."""
    text = _text(render_summary(_utilization_case(clock), 125.0))
    for expected in [
        "items",
        "52",
        "wall time",
        "2m05s",
        "7,500",  # tokens in
        "500",  # tokens out
        "50,000 read, 2,500 written",
        "$25.00",
        "rate_limited 1",
        "80.0% (0.40/s of 0.50/s, bound by input_tokens)",
    ]:
        assert expected in text, expected
    assert "starting allowance" not in text  # said only when the steady rate was beaten
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in text.splitlines() if "│" in line}
    assert (lines["ok"], lines["failed"], lines["invalid"], lines["not sent"]) == (
        "50",
        "0",
        "1",
        "1 (stopped before sending, or a repeated id)",
    )


def test_summary_without_known_limits(clock: FakeClock) -> None:
    """With no limit known the utilization is 'n/a' and unknown prices read 'unknown'."""
    tracker = ProgressTracker(clock=clock, price_known=False)
    tracker(ok(0.5, usage=Usage(input_tokens=10, output_tokens=10)))
    snap = tracker.snapshot()
    assert utilization(snap, 10.0) is None
    text = _text(render_summary(snap, 10.0))
    assert "n/a" in text
    assert "unknown" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0"), (950, "950"), (41_200, "41.2k"), (50_000, "50k"), (1_500_000, "1.5M"), (2e9, "2G")],
)
def test_format_count(value: float, expected: str) -> None:
    """Counts are compacted with k/M/G suffixes and no trailing '.0'."""
    assert format_count(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "--"), (0.0, "0s"), (42.4, "42s"), (140.0, "2m20s"), (3599.0, "59m59s"), (7500.0, "2h05m")],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    """Durations read as s, m+s or h+m; unknown is '--'."""
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("cost", "expected"), [(None, "unknown"), (0.0031, "$0.0031"), (1.0, "$1.00"), (1234.5, "$1,234.50")]
)
def test_format_cost(cost: float | None, expected: str) -> None:
    """Costs under a dollar keep four decimals; unknown prices read 'unknown'."""
    assert format_cost(cost) == expected


def test_format_kinds_orders_by_count() -> None:
    """Counts by kind list the largest first and skip zeros; nothing reads '0'."""
    assert format_kinds({"transport": 1, "server": 3, "timeout": 0}) == "server 3, transport 1"
    assert format_kinds({}) == "0"


def test_live_panel_without_total_and_with_empty_total(clock: FakeClock) -> None:
    """An unknown total shows a count of done items; an empty input shows 100%."""
    tracker = ProgressTracker(clock=clock)
    tracker(ok(0.5))
    at(clock, 1.0)
    assert "1 done" in _text(render_live(tracker.snapshot()))
    empty = ProgressTracker(clock=clock, total=0)
    text = _text(render_live(empty.snapshot()))
    assert "0/0 (100.0%)" in text
    assert "eta 0s" in text


@pytest.mark.parametrize(
    ("costs", "line", "row"),
    [
        ((0.5, None), "cost $0.5000 + 1 unpriced", "$0.5000 + unknown (1 answer(s) with no price for acme-1)"),
        ((None, None), "cost unknown", "unknown (2 answer(s) with no price for acme-1)"),
        ((0.5, 0.25), "cost $0.7500", "$0.7500"),
    ],
)
def test_unpriced_answers_are_reported(clock: FakeClock, costs: tuple[float | None, ...], line: str, row: str) -> None:
    """Answers whose model has no price show as unknown in the live line and the summary, never as $0."""
    tracker = ProgressTracker(clock=clock)
    for i, cost in enumerate(costs):
        tracker(ok(0.5, index=i, cost=cost, model="acme-1"))
    snap = tracker.snapshot()
    assert line in render_plain(snap)
    lines = {
        x.split("│")[1].strip(): x.split("│")[2].strip()
        for x in _text(render_summary(snap, 1.0)).splitlines()
        if "│" in x
    }
    assert lines["cost"] == row


def test_summary_shows_the_1h_cache_writes(clock: FakeClock) -> None:
    """The cache row says how many of the written tokens used the 1-hour TTL."""
    tracker = ProgressTracker(clock=clock)
    usage = Usage(cache_creation_input_tokens=7000, cache_creation_1h_input_tokens=6000, cache_read_input_tokens=10)
    tracker(ok(0.5, usage=usage))
    assert "10 read, 7,000 written (6,000 with the 1h TTL)" in _text(render_summary(tracker.snapshot(), 1.0))


def test_live_panel_in_the_servers_minutes_under_compressed_time(clock: FakeClock) -> None:
    """With 1 rate-limit minute = 6 s the title says so once, and limits and token rates are the server's own
    per-minute figures (a tenth of the per-real-minute ones), so they match the tier's published numbers."""
    text = _text(render_live(_busy_run(clock).snapshot(STATS), minute=6.0))
    assert "compressed time: 1 rate-limit minute = 6 s" in text
    assert "requests limit 100/min" in text
    assert "in 4.3k/5k tpm" in text
    assert "out 600/800 tpm" in text


def test_a_resumed_run_shows_what_earlier_runs_finished(clock: FakeClock) -> None:
    """A re-run of a finished job says its items finished earlier instead of 'ok 0' next to '100 done'."""
    tracker = ProgressTracker(clock=clock, total=100, already_done=100)
    text = _text(render_live(tracker.snapshot()))
    assert "100/100 (100.0%)" in text
    assert "this run: ok 0" in text
    assert "finished in earlier runs 100" in text


def test_summary_says_what_fraction_of_the_best_possible_was_used(clock: FakeClock) -> None:
    """With the bucket sizes known, a perfect client spends the full 6,000-token input bucket at once and the other
    4,000 tokens at 100 per second: 40 s of the run's 125 s, so 32% of the best possible; no row without sizes."""
    snap = _utilization_case(clock)
    assert snap.statistics is not None
    limiter = replace(snap.statistics.limiter, buckets={"requests": 60, "input_tokens": 6000})
    sized = replace(snap, statistics=replace(snap.statistics, limiter=limiter))
    assert best_possible(sized) == 40.0
    assert "of best possible │ 32.0% (a perfect client: 40s, starting from full buckets)" in _text(
        render_summary(sized, 125.0)
    )
    assert "of best possible" not in _text(render_summary(snap, 125.0))


def test_summary_explains_utilization_above_the_steady_rate(clock: FakeClock) -> None:
    """A job that beat the steady ceiling (living off the full starting bucket) says why instead of a bare >100%."""
    text = _text(render_summary(_utilization_case(clock), 50.0))
    assert "200.0% (1.00/s of 0.50/s, bound by input_tokens)" in text
    assert "starting allowance was spent first" in text
