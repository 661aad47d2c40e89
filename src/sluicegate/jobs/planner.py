"""Which route to send a job by: each route's cost and duration from the estimate, and the cheapest that meets the
deadline (pure: numbers in, a plan out).

Routes:
- online: list prices; duration at the account's rate limits (the binding limit decides; cache reads do not
  count toward Anthropic's input-token limit).
- batch: the batch discount on every token; results within 24 h, most within `batch_typical` (an hour). With a
  deadline, a batch still running when only the time to finish its rest online is left is cancelled, what it
  finished is kept and the rest goes online, so the job ends in time at a cost between the two.
- flex (OpenAI models): batch prices on synchronous calls, slower (`flex_slowdown`) and sometimes refused; a
  refused or too slow request falls back to standard.

`auto` takes the cheapest route whose expected duration meets the deadline; with the batch it also needs the time
to finish online after a late cancel. With no deadline, the cheapest route wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .._models import RequestItem
from ..pricing import PriceTable
from .estimate import Estimate, estimate
from .reader import Defaults, InputProblem, iter_lines, read_requests
from .tables import TableSpec, table_requests
from .warmup import SharedPrefixes

__all__ = [
    "CacheEstimate",
    "FilePlan",
    "Plan",
    "RouteEstimate",
    "format_duration",
    "parse_duration",
    "plan_file",
    "plan_routes",
]

Route = Literal["online", "batch", "flex"]
_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s?)?")


@dataclass(frozen=True, slots=True)
class CacheEstimate:
    """What warm-up is expected to cache, per model: prefix tokens read from the cache and written to it."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouteEstimate:
    """One route: cost with the expected answer length (and at max_tokens), expected duration (s), verdict."""

    route: Route
    cost: float | None
    cost_max: float | None
    seconds: float | None
    meets_deadline: bool | None  # None: no deadline, or no duration known
    note: str


@dataclass(frozen=True, slots=True)
class Plan:
    routes: tuple[RouteEstimate, ...]
    choice: Route
    why: str


def _cost(
    est: Estimate, prices: PriceTable, cache: CacheEstimate | None, *, batch: bool, expected: bool, ttl: str
) -> float | None:
    from .._models import Usage

    total = 0.0
    for model, row in est.models.items():
        read = cache.read.get(model, 0) if cache else 0
        written = cache.written.get(model, 0) if cache else 0
        usage = Usage(
            input_tokens=max(0, row.input_tokens - read - written),
            output_tokens=row.expected_output_tokens if expected else row.max_output_tokens,
            cache_creation_input_tokens=written,
            cache_read_input_tokens=read,
            cache_creation_1h_input_tokens=written if ttl == "1h" else 0,
        )
        cost = prices.cost(model, usage, batch=batch)
        if cost is None:
            return None
        total += cost
    return total


def _online_seconds(
    est: Estimate, cache: CacheEstimate | None, rpm: float | None, itpm: float | None, otpm: float | None
) -> float | None:
    read = sum(cache.read.values()) if cache else 0
    totals = list(est.models.values())
    spans = [
        amount / limit
        for amount, limit in (
            (est.requests, rpm),
            (max(0, sum(m.input_tokens for m in totals) - read), itpm),
            (sum(m.expected_output_tokens for m in totals), otpm),
        )
        if limit
    ]
    return 60.0 * max(spans) if spans else None


def plan_routes(
    est: Estimate,
    prices: PriceTable,
    *,
    provider: Literal["anthropic", "openai"],
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    deadline: float | None = None,
    cache: CacheEstimate | None = None,
    batch_typical: float = 3600.0,
    batch_window: float = 86_400.0,
    flex_slowdown: float = 2.0,
) -> Plan:
    """Every route's estimate and the one `auto` takes. `deadline` is in seconds from now."""
    online_s = _online_seconds(est, cache, rpm, itpm, otpm)

    def meets(seconds: float | None) -> bool | None:
        return None if deadline is None or seconds is None else seconds <= deadline

    def costs(*, batch: bool, ttl: str = "5m") -> tuple[float | None, float | None]:
        return (
            _cost(est, prices, cache, batch=batch, expected=True, ttl=ttl),
            _cost(est, prices, cache, batch=batch, expected=False, ttl=ttl),
        )

    online_cost, online_max = costs(batch=False)
    routes = [
        RouteEstimate(
            "online",
            online_cost,
            online_max,
            online_s,
            meets(online_s),
            "at the given limits" if online_s is not None else "give --rpm/--itpm/--otpm for a duration",
        )
    ]
    batch_cost, batch_max = costs(batch=True, ttl="1h")  # the batch route primes with a 1-hour TTL
    batch_s = min(batch_typical, batch_window)
    if deadline is None:
        batch_note = f"most batches end within {batch_typical / 3600:g} h, all within {batch_window / 3600:g} h"
        batch_meets = None
    elif deadline >= batch_window:
        batch_note, batch_meets = "the 24 h window ends before the deadline", True
    elif online_s is not None and online_s <= deadline:
        batch_meets = True
        left = deadline - online_s
        batch_note = (
            f"a batch not ended {_hours(left)} after the start is cancelled and its rest sent online"
            if left > 0
            else "no time for a batch: it would be cancelled at once"
        )
        batch_s = min(batch_typical, deadline)
        if left < batch_typical:
            # Likely to end partly online: the expected cost lies between the two prices, at most the online one.
            batch_cost = None if batch_cost is None or online_cost is None else (batch_cost + online_cost) / 2
            batch_max = online_max
    else:
        batch_meets = batch_typical <= deadline
        batch_note = "not guaranteed: online alone cannot meet the deadline either"
    routes.append(RouteEstimate("batch", batch_cost, batch_max, batch_s, batch_meets, batch_note))
    if provider == "openai":
        flex_s = None if online_s is None else online_s * flex_slowdown
        flex_cost, flex_max = costs(batch=True)
        note = f"batch prices, about {flex_slowdown:g}x slower; refused or late requests go standard"
        routes.append(RouteEstimate("flex", flex_cost, flex_max, flex_s, meets(flex_s), note))
    return _choose(tuple(routes), deadline)


def _choose(routes: tuple[RouteEstimate, ...], deadline: float | None) -> Plan:
    def price(r: RouteEstimate) -> float:
        return r.cost if r.cost is not None else float("inf")

    by_cost = sorted(routes, key=price)
    if deadline is None:
        best = by_cost[0]
        return Plan(routes, best.route, f"{best.route} is the cheapest ({_money(best.cost)}) and no deadline was given")
    fitting = [r for r in by_cost if r.meets_deadline]
    if fitting:
        best = fitting[0]
        dearer = [r.route for r in by_cost if price(r) < price(best)]
        why = f"{best.route} is the cheapest route that meets the {_hours(deadline)} deadline ({_money(best.cost)})"
        if dearer:
            why += f"; {', '.join(dearer)} would be cheaper but may not end in time"
        return Plan(routes, best.route, why)
    return Plan(routes, "online", "no route is known to meet the deadline: online is the fastest")


def _money(value: float | None) -> str:
    return "unknown price" if value is None else f"${value:,.2f}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `6h`, `90m`, `1h30m`, `2d` or `45s` (a bare number is seconds)."""
    parts = _DURATION.fullmatch(text.strip())
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 6h, 90m, 1h30m, 2d)")
    days, hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    return days * 86_400 + hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: float) -> str:
    """The canonical spelling of a duration (`6h`, `1h30m`, `45s`): `6h` and `360m` are one job setting."""
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class FilePlan:
    """The plan of an input file, with the estimate and the expected cache reads it rests on."""

    plan: Plan
    estimate: Estimate
    cache: CacheEstimate | None


def plan_file(
    path: Path,
    defaults: Defaults,
    prices: PriceTable,
    *,
    provider: Literal["anthropic", "openai"],
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    deadline: float | None,
    cache_warmup: bool = True,
    expected_output: float = 0.25,
    input_scale: float = 1.0,
    table: TableSpec | None = None,
) -> FilePlan:
    """Estimate an input file and plan its routes, in two streamed passes (memory stays flat): tokens and the
    prefixes shared, then what warm-up would read from the cache. `input_scale` corrects the character-based
    input estimate (see `calibrate.py`). A `table` makes its rows requests through its template."""

    def requests() -> Iterator[RequestItem | InputProblem]:
        if table is not None:
            yield from table_requests(path, table, defaults, provider)
            return
        with path.open("rb") as f:
            yield from read_requests(iter_lines(f), defaults=defaults, provider=provider)

    prefixes = SharedPrefixes(provider)

    def counted() -> Iterator[RequestItem | InputProblem]:
        for item in requests():
            if cache_warmup and not isinstance(item, InputProblem):
                prefixes.add(item.params)
            yield item

    est = estimate(counted(), expected_output_fraction=expected_output)
    for row in est.models.values():
        row.input_tokens = round(row.input_tokens * input_scale)
    cache = None
    if cache_warmup:
        read, written = prefixes.expected(p.params for p in requests() if not isinstance(p, InputProblem))
        scaled = {k: round(v * input_scale) for k, v in read.items()}
        cache = CacheEstimate(read=scaled, written={k: round(v * input_scale) for k, v in written.items()})
        cache = cache if read else None
    plan = plan_routes(est, prices, provider=provider, rpm=rpm, itpm=itpm, otpm=otpm, deadline=deadline, cache=cache)
    return FilePlan(plan, est, cache)
