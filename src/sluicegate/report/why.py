"""Why a job took as long as it did, and what would make it faster or cheaper: a pure function of its timeline.

The best possible throughput is fixed by arithmetic (see the architecture notes):

    items/s <= min( RPM/60 / attempts_per_item , ITPM/60 / input_per_item , OTPM/60 / output_per_item ,
                    concurrency / latency )

Each term is a ceiling. The limiter also says, a few times a second, which gate admission is waiting for; that
direct evidence decides the binding limit when admission waited most of the time, and the arithmetic backs it up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from ..jobs.timeline_rows import Row, bin_lower

__all__ = ["Bound", "Diagnosis", "Profile", "explain", "mean_latency", "profile"]

Bound = Literal["requests", "input_tokens", "output_tokens", "tokens", "concurrency", "rate_limited", "none"]

_NAMES: dict[str, str] = {
    "requests": "requests per minute (RPM)",
    "input_tokens": "input tokens per minute (ITPM)",
    "output_tokens": "output tokens per minute (OTPM)",
    "tokens": "tokens per minute (TPM)",
    "concurrency": "concurrency (requests in flight) against latency",
}
_WAITED = 0.5  # admission waited in at least this share of samples: a limit bound
_AT_CEILING = 0.9  # throughput at this share of a rate limit's ceiling: that limit bound, whatever else happened
_NEAR_CEILING = 0.8  # without the limiter's word (no samples), this near the lowest ceiling is bound by it


@dataclass(frozen=True, kw_only=True)
class Profile:
    """A job summed over its busy time: what it did, against which limits, and how the limiter saw it."""

    seconds: float  # wall seconds with work in progress, over every run
    succeeded: int
    attempts: int
    input_tokens: int  # uncached input
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    cost: float
    cost_input: float
    cost_cache_write: float
    cost_cache_read: float
    cost_output: float
    rpm: float | None = None
    itpm: float | None = None
    otpm: float | None = None
    tpm: float | None = None
    concurrency: int = 0  # the largest concurrency limit seen
    in_flight_max: int = 0
    latency: float | None = None  # mean seconds per successful item
    rate_limited: int = 0  # 429 answers
    overloaded: int = 0  # 529 answers
    waiting_share: float = 0.0  # share of limiter samples with admission waiting
    binding: dict[str, float] = field(default_factory=dict)  # share of samples by the gate waited for
    batch: bool = False  # the job ran through a batch API (already half price)
    max_tokens: int | None = None
    provider: str = "anthropic"


@dataclass(frozen=True)
class Diagnosis:
    """Which limit bound the job, the ceilings (items/s) the arithmetic gives, and the advice, in plain words."""

    bound: Bound
    paragraph: str
    faster: list[str]
    cheaper: list[str]
    ceilings: dict[str, float]


def mean_latency(rows: Sequence[Row]) -> float | None:
    """Mean seconds per success from the rows' histograms (each bin counted at its geometric middle)."""
    counts: Counter[int] = Counter()
    for row in rows:
        counts.update(row.latency)
    total = sum(counts.values())
    if not total:
        return None
    return sum(n * (bin_lower(b) + bin_lower(b + 1)) / 2 for b, n in counts.items()) / total


def profile(
    rows: Sequence[tuple[float, Row]],
    *,
    batch: bool = False,
    max_tokens: int | None = None,
    provider: str = "anthropic",
) -> Profile:
    """Sum `(width, row)` pairs of every run into a Profile of a job with these settings."""
    busy = [(w, r) for w, r in rows if r.admitted or r.succeeded or r.failed or r.in_flight_max]

    def total(name: str) -> float:
        return float(sum(getattr(r, name) for _, r in busy))

    def last(name: str) -> float | None:
        values = [getattr(r, name) for _, r in rows if getattr(r, name) is not None]
        return values[-1] if values else None

    samples = total("samples")
    binding: Counter[str] = Counter()
    for _, r in busy:
        binding.update(r.binding)
    return Profile(
        seconds=sum(w for w, _ in busy),
        succeeded=int(total("succeeded")),
        attempts=int(total("admitted")),
        input_tokens=int(total("input_tokens")),
        cache_write_tokens=int(total("cache_write_tokens")),
        cache_read_tokens=int(total("cache_read_tokens")),
        output_tokens=int(total("output_tokens")),
        cost=total("cost"),
        cost_input=total("cost_input"),
        cost_cache_write=total("cost_cache_write"),
        cost_cache_read=total("cost_cache_read"),
        cost_output=total("cost_output"),
        rpm=last("rpm"),
        itpm=last("itpm"),
        otpm=last("otpm"),
        tpm=last("tpm"),
        concurrency=int(max((r.concurrency or 0 for _, r in rows), default=0)),
        in_flight_max=max((r.in_flight_max for _, r in rows), default=0),
        latency=mean_latency([r for _, r in rows]),
        rate_limited=int(total("rate_limited")),
        overloaded=int(total("overloaded")),
        waiting_share=total("waiting_samples") / samples if samples else 0.0,
        binding={k: v / samples for k, v in binding.items()} if samples else {},
        batch=batch,
        max_tokens=max_tokens,
        provider=provider,
    )


def ceilings(p: Profile) -> dict[str, float]:
    """Items per second each limit allows at this job's averages (only the limits that are known)."""
    out: dict[str, float] = {}
    n = max(p.succeeded, 1)
    per_item_attempts = max(p.attempts / n, 1.0)
    rate_limited_in = (p.input_tokens + p.cache_write_tokens) / n  # cache reads do not count toward ITPM
    out_per_item = p.output_tokens / n
    if p.rpm:
        out["requests"] = p.rpm / 60 / per_item_attempts
    if p.itpm and rate_limited_in:
        out["input_tokens"] = p.itpm / 60 / rate_limited_in
    if p.otpm and out_per_item:
        out["output_tokens"] = p.otpm / 60 / out_per_item
    if p.tpm and (rate_limited_in + out_per_item):
        out["tokens"] = p.tpm / 60 / (rate_limited_in + out_per_item + p.cache_read_tokens / n)
    if p.concurrency and p.latency:
        out["concurrency"] = p.concurrency / p.latency
    return out


def _bound(p: Profile, ceils: dict[str, float]) -> Bound:
    """A job at (nearly) a rate limit's ceiling is bound by that limit, whatever else admission waited for (429
    pauses included: they are how the server enforced it). Below every ceiling, the limiter's samples say why."""
    if p.succeeded == 0 or p.seconds <= 0:
        return "none"
    rate = p.succeeded / p.seconds
    limits = {k: v for k, v in ceils.items() if k != "concurrency"}
    if limits:
        lowest = min(limits, key=lambda k: limits[k])
        if rate >= _AT_CEILING * limits[lowest]:
            return cast(Bound, lowest)
    gates = {k: v for k, v in p.binding.items() if k != "cooldown"}
    if p.waiting_share >= _WAITED:
        if p.binding.get("cooldown", 0.0) > max(gates.values(), default=0.0):
            return "rate_limited"
        if gates:
            return cast(Bound, max(gates, key=lambda k: gates[k]))
    if ceils:
        lowest = min(ceils, key=lambda k: ceils[k])
        if rate >= _NEAR_CEILING * ceils[lowest]:
            return cast(Bound, lowest)
    if p.concurrency and p.in_flight_max >= p.concurrency:
        return "concurrency"
    return "none"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def explain(p: Profile) -> Diagnosis:
    """The 'why it took this long' paragraph and the advice for a job summed up in `p`."""
    ceils = ceilings(p)
    bound = _bound(p, ceils)
    if p.seconds <= 0:
        paragraph = (
            "No timeline was recorded for this job (it ran through a batch API, or with a version that kept none), "
            "so its pace cannot be explained; the totals and errors come from the job store."
        )
        return Diagnosis("none", paragraph, [], [], ceils)
    rate = p.succeeded / p.seconds if p.seconds > 0 else 0.0
    head = f"{p.succeeded:,} items in {_duration(p.seconds)} of work: {rate:.2f} per second."
    faster: list[str] = []
    cheaper: list[str] = []
    # The concurrency limit follows the rate (Little's law), so only another rate limit binds next.
    others = {k: v for k, v in ceils.items() if k not in (bound, "concurrency")}
    nxt = min(others, key=lambda k: others[k]) if others else None
    room = ""
    if nxt is not None and bound in ceils and ceils[nxt] > ceils[bound]:
        room = (
            f" Lifting it would help up to {ceils[nxt] / ceils[bound]:.1f}x, where "
            f"{_NAMES[nxt].split(' (')[0]} would bind next."
        )
    if bound in ("requests", "input_tokens", "output_tokens", "tokens"):
        limit = {"requests": p.rpm, "input_tokens": p.itpm, "output_tokens": p.otpm, "tokens": p.tpm}[bound]
        share = rate / ceils[bound] if bound in ceils else 0.0
        body = (
            f" The binding limit was {_NAMES[bound]}: {limit:,.0f} per minute allows {ceils.get(bound, 0):.2f} items "
            f"per second at this job's averages, and the job ran at {share:.0%} of that.{room}"
        )
        faster.append("A higher rate limit (a higher usage tier) raises this ceiling in proportion.")
        if bound == "requests":
            faster.append("Fewer, larger requests: several small items per request use the request budget better.")
        if bound == "input_tokens":
            if p.provider == "anthropic":
                faster.append(
                    "Prompt caching: cache reads do not count toward ITPM, so a cached shared prefix "
                    "(system prompt, instructions, documents) frees input-token budget."
                )
            faster.append("Shorter prompts: every input token counts against ITPM.")
        if bound in ("output_tokens", "tokens"):
            avg_out = p.output_tokens / max(p.succeeded, 1)
            hint = f" (answers averaged {avg_out:.0f} tokens" + (
                f" of max_tokens {p.max_tokens})" if p.max_tokens else ")"
            )
            faster.append(f"Shorter answers and a smaller max_tokens{hint}: output tokens are what ran out.")
        if not p.batch:
            faster.append(
                "The Batch API is not subject to these per-minute limits: `sluicegate batch` runs the same file "
                "there (results within 24 h)."
            )
    elif bound == "rate_limited":
        body = (
            f" Admission was paused by the server's 429 answers ({p.rate_limited:,} of them) most of the time: the "
            "account's limits were lower than the ones known here, or another client shares them."
        )
        faster.append("Give the account's real limits (--rpm/--itpm/--otpm) or let them be learnt from headers.")
        faster.append("Run one job per key at a time, or share one limiter between the clients of a key.")
    elif bound == "concurrency":
        latency = f"{p.latency:.1f} s" if p.latency else "unknown"
        body = (
            f" It was bound by latency and concurrency: at most {p.concurrency} requests in flight, each taking "
            f"{latency} on average, allow {ceils.get('concurrency', rate):.2f} items per second (Little's law); "
            f"no rate limit was reached.{room}"
        )
        faster.append(f"More requests in flight: raise --max-concurrency above {p.concurrency}.")
        faster.append("A faster model, or shorter answers, cuts the latency of each request.")
    else:
        body = (
            " No rate limit bound it: admission rarely waited and throughput stayed below every known ceiling, so "
            "the time went to the answers' latency and to reading the input."
        )
    if p.overloaded:
        body += f" The server answered {p.overloaded:,} times that it was overloaded (529); those were retried."
    if p.cost > 0 and not p.batch:
        cheaper.append(
            f"`sluicegate batch` (Message Batches) bills half price: this job's ${p.cost:.4f} would have been "
            f"about ${p.cost / 2:.4f}."
        )
    inputs = p.cost_input + p.cost_cache_write
    if p.cost > 0 and inputs / p.cost >= 0.3 and p.cache_read_tokens == 0:
        cheaper.append(
            f"Input was {inputs / p.cost:.0%} of the cost and nothing was read from the prompt cache: a shared "
            "prefix marked with cache_control is billed at a tenth of the input price when read back."
        )
    if p.cost > 0 and p.cost_output / p.cost >= 0.5:
        cheaper.append(
            f"Output was {p.cost_output / p.cost:.0%} of the cost: ask for shorter answers or lower max_tokens."
        )
    return Diagnosis(bound, head + body, faster, cheaper, ceils)
