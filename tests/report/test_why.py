"""The 'why it took this long' analysis on constructed timelines: one job per binding limit."""

from __future__ import annotations

from collections import Counter

import pytest

from sluicegate.jobs.timeline_rows import Row, latency_bin
from sluicegate.report.why import explain, profile

SECONDS = 120


def timeline(
    *,
    per_second: int,
    concurrency: int,
    binding: str | None,
    input_tokens: int = 100,
    output_tokens: int = 50,
    latency: float = 1.0,
    rpm: float | None = 4000,
    itpm: float | None = 2_000_000,
    otpm: float | None = 400_000,
    waiting: int = 4,
) -> list[tuple[float, Row]]:
    """SECONDS one-second rows of a steady job: `per_second` successes of this size, the limiter sampled 4 times a
    second, admission waiting on `binding` in `waiting` of those samples. The defaults are a small request under
    roomy limits; each test names only what makes its job different."""
    rows = []
    for _ in range(SECONDS):
        row = Row()
        row.admitted = row.succeeded = per_second
        row.input_tokens = per_second * input_tokens
        row.output_tokens = per_second * output_tokens
        row.cost_input = row.input_tokens * 1e-6
        row.cost_output = row.output_tokens * 5e-6
        row.cost = row.cost_input + row.cost_output
        row.latency = Counter({latency_bin(latency): per_second})
        row.rpm, row.itpm, row.otpm, row.concurrency = rpm, itpm, otpm, concurrency
        row.in_flight_max = concurrency
        row.samples = 4
        row.waiting_samples = waiting if binding else 0
        if binding:
            row.binding = Counter({binding: waiting})
        rows.append((1.0, row))
    return rows


def test_a_job_bound_by_requests_per_minute_is_said_to_be() -> None:
    """10 small items/s against 600 RPM: RPM binds, at ~100%, and the advice is a higher tier or larger requests."""
    rows = timeline(per_second=10, input_tokens=200, rpm=600, concurrency=22, binding="requests")
    d = explain(profile(rows, max_tokens=256))
    assert d.bound == "requests"
    assert "binding limit was requests per minute (RPM)" in d.paragraph
    assert "ran at 100% of that" in d.paragraph
    assert d.ceilings["requests"] == pytest.approx(10.0)
    assert any("larger requests" in line for line in d.faster)
    assert any("higher usage tier" in line for line in d.faster)
    assert any("sluicegate batch" in line for line in d.cheaper)


def test_a_job_bound_by_input_tokens_is_said_to_be_and_caching_is_suggested() -> None:
    """2,000-token prompts against 60,000 ITPM allow 0.5 items/s: ITPM binds and prompt caching is the advice."""
    rows = timeline(per_second=1, input_tokens=2000, latency=2.0, itpm=120_000, concurrency=6, binding="input_tokens")
    d = explain(profile(rows))
    assert d.bound == "input_tokens"
    assert "input tokens per minute (ITPM)" in d.paragraph
    assert d.ceilings["input_tokens"] == pytest.approx(1.0)
    assert any("Prompt caching" in line for line in d.faster)
    assert any("nothing was read from the prompt cache" in line for line in d.cheaper)


def test_a_job_bound_by_output_tokens_is_said_to_be_and_max_tokens_is_named() -> None:
    """500-token answers against 60,000 OTPM: OTPM binds and the advice names max_tokens and the average answer."""
    rows = timeline(per_second=2, output_tokens=500, latency=6.0, otpm=60_000, concurrency=26, binding="output_tokens")
    d = explain(profile(rows, max_tokens=1024))
    assert d.bound == "output_tokens"
    assert "output tokens per minute (OTPM)" in d.paragraph
    assert any("smaller max_tokens (answers averaged 500 tokens of max_tokens 1024)" in line for line in d.faster)
    assert any("Output was" in line for line in d.cheaper)
    # RPM would bind next, at 4000/60 items/s against 2 items/s now.
    assert "help up to 33.3x" in d.paragraph


def test_a_job_bound_by_latency_and_concurrency_is_said_to_be() -> None:
    """4 in flight at 2 s each allow 2 items/s, far below every rate limit: latency and concurrency bound it."""
    rows = timeline(per_second=2, latency=2.0, concurrency=4, binding="concurrency")
    d = explain(profile(rows))
    assert d.bound == "concurrency"
    assert "bound by latency and concurrency: at most 4 requests in flight" in d.paragraph
    assert any("raise --max-concurrency above 4" in line for line in d.faster)
    assert d.ceilings["concurrency"] == pytest.approx(2.0, rel=0.2)  # the mean is read from a histogram


def test_the_arithmetic_decides_when_the_limiter_was_never_sampled() -> None:
    """Without limiter samples, a job running at its lowest ceiling (OTPM here) is bound by that limit."""
    rows = timeline(per_second=2, output_tokens=500, latency=6.0, otpm=60_000, concurrency=26, binding=None)
    for _, row in rows:
        row.samples = 0
    assert explain(profile(rows)).bound == "output_tokens"


def test_a_job_below_every_ceiling_is_not_blamed_on_a_limit() -> None:
    """1 item/s against ceilings of 10+/s with admission never waiting: no limit bound it, and the page says so."""
    rows = timeline(per_second=1, rpm=600, concurrency=50, binding=None)
    for _, row in rows:
        row.in_flight_max = 2
    d = explain(profile(rows))
    assert d.bound == "none"
    assert "No rate limit bound it" in d.paragraph


def test_429_pauses_are_named_when_admission_mostly_waited_for_them() -> None:
    """Admission waiting on the 429 cool-down most of the time is reported as the server's 429s, not a limit."""
    rows = timeline(per_second=1, rpm=600, concurrency=8, binding="cooldown")
    for _, row in rows:
        row.rate_limited = 3
    d = explain(profile(rows))
    assert d.bound == "rate_limited"
    assert "429 answers (360 of them)" in d.paragraph


def test_a_job_without_a_timeline_says_so_instead_of_guessing() -> None:
    """No rows (a batch job, or an older version's store): the paragraph says no timeline was kept."""
    d = explain(profile([]))
    assert d.bound == "none"
    assert d.paragraph.startswith("No timeline was recorded for this job")


def test_429_pauses_at_the_ceiling_are_blamed_on_the_limit_they_enforced() -> None:
    """At 100% of the RPM ceiling, admission waiting on 429 cool-downs is the limit at work: RPM bound it."""
    rows = timeline(per_second=10, input_tokens=200, rpm=600, concurrency=22, binding="cooldown")
    assert explain(profile(rows)).bound == "requests"
