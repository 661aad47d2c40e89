"""Pure renderers of a ProgressSnapshot: the live panel, the plain log line and the final summary."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ._format import format_cost, format_count, format_duration, format_kinds, format_rate
from ._tracker import ObservedLimits, ProgressSnapshot

__all__ = [
    "Utilization",
    "best_possible",
    "known_limits",
    "render_live",
    "render_plain",
    "render_summary",
    "utilization",
]


@dataclass(frozen=True, slots=True)
class Utilization:
    """Achieved completions per second as a fraction of the ceiling the known limits allow."""

    achieved: float  # completions/s over the wall time
    ceiling: float  # completions/s the tightest known limit allows at the run's average request size
    limit: str  # which limit sets the ceiling: requests, input_tokens, output_tokens or tokens

    @property
    def fraction(self) -> float:
        return self.achieved / self.ceiling


def known_limits(snapshot: ProgressSnapshot) -> ObservedLimits:
    """Per-minute limits: the limiter's view where it has one, else what response headers last said."""
    observed = snapshot.observed_limits
    stats = snapshot.statistics
    if stats is None:
        return observed
    lim = stats.limiter
    known = (lim.requests_per_minute, lim.input_tokens_per_minute, lim.output_tokens_per_minute, lim.tokens_per_minute)
    if any(known):
        # The limiter has merged the headers already, scaled to real minutes, and drops Anthropic's combined
        # "tokens" bucket when input and output are reported apart: mixing in raw header values would not.
        return ObservedLimits(*known)
    return ObservedLimits(
        requests_per_minute=lim.requests_per_minute or observed.requests_per_minute,
        input_tokens_per_minute=lim.input_tokens_per_minute or observed.input_tokens_per_minute,
        output_tokens_per_minute=lim.output_tokens_per_minute or observed.output_tokens_per_minute,
        tokens_per_minute=lim.tokens_per_minute or observed.tokens_per_minute,
    )


def binding(snapshot: ProgressSnapshot) -> str:
    """The gate holding admission back now: a 429 cooldown first, else the limiter's binding limit."""
    if snapshot.cooldown_remaining > 0:
        return "cooldown"
    stats = snapshot.statistics
    if stats is not None and stats.limiter.binding is not None:
        return stats.limiter.binding
    return "none"


def utilization(snapshot: ProgressSnapshot, wall_time: float) -> Utilization | None:
    """Achieved rate over min(RPM/60, ITPM/60/avg_in, OTPM/60/avg_out, TPM/60/avg_total); None if no limit known."""
    if wall_time <= 0:
        return None
    limits = known_limits(snapshot)
    sent = snapshot.sent
    avg_in = snapshot.usage.rate_limited_input_tokens / sent if sent else 0.0
    avg_out = snapshot.usage.output_tokens / sent if sent else 0.0
    candidates: list[tuple[float, str]] = []
    if limits.requests_per_minute:
        candidates.append((limits.requests_per_minute / 60.0, "requests"))
    if limits.input_tokens_per_minute and avg_in > 0:
        candidates.append((limits.input_tokens_per_minute / 60.0 / avg_in, "input_tokens"))
    if limits.output_tokens_per_minute and avg_out > 0:
        candidates.append((limits.output_tokens_per_minute / 60.0 / avg_out, "output_tokens"))
    if limits.tokens_per_minute and avg_in + avg_out > 0:
        candidates.append((limits.tokens_per_minute / 60.0 / (avg_in + avg_out), "tokens"))
    if not candidates:
        return None
    ceiling, limit = min(candidates)
    return Utilization(achieved=sent / wall_time, ceiling=ceiling, limit=limit)


def best_possible(snapshot: ProgressSnapshot) -> float | None:
    """Seconds a perfect client needs for this run's requests: each known bucket starts full (the server's
    starting allowance, spent at once), then refills at its rate; the slowest bucket decides. None when no
    bucket size is known."""
    stats = snapshot.statistics
    sent = snapshot.sent
    if stats is None or not sent:
        return None
    limits = known_limits(snapshot)
    usage = snapshot.usage
    spent = {
        "requests": float(sent),
        "input_tokens": float(usage.rate_limited_input_tokens),
        "output_tokens": float(usage.output_tokens),
        "tokens": float(usage.rate_limited_input_tokens + usage.output_tokens),
    }
    per_minute = {
        "requests": limits.requests_per_minute,
        "input_tokens": limits.input_tokens_per_minute,
        "output_tokens": limits.output_tokens_per_minute,
        "tokens": limits.tokens_per_minute,
    }
    seconds: list[float] = []
    for name, size in stats.limiter.buckets.items():
        rate = per_minute.get(name)
        if rate and name in spent:
            seconds.append(max(0.0, spent[name] - size) / (rate / 60.0))
    return max(seconds) if seconds else None


def _of_limit(rate: float, limit: float | None, scale: float = 1.0) -> str:
    """Tokens a minute and their limit, in the server's minutes (`scale` = its minute's length / 60 s)."""
    rate *= scale
    return f"{format_count(rate)}/{format_count(limit * scale)} tpm" if limit else f"{format_count(rate)} tpm"


def _progress_text(snapshot: ProgressSnapshot) -> str:
    finished = snapshot.already_done + snapshot.done
    if snapshot.total is None:
        return f"{finished:,} done"
    percent = 100.0 * finished / snapshot.total if snapshot.total else 100.0
    return f"{finished:,}/{snapshot.total:,} ({percent:.1f}%)"


def _in_flight(snapshot: ProgressSnapshot) -> str:
    """Requests awaiting an answer, and the most the engine lets wait at once (sized to the rate limits)."""
    stats = snapshot.statistics
    if stats is not None and stats.limiter.concurrency_limit:
        return f"in flight {snapshot.in_flight} (at most {stats.limiter.concurrency_limit})"
    return f"in flight {snapshot.in_flight}"


def _cost_text(snapshot: ProgressSnapshot) -> str:
    if snapshot.cost is None:
        return "cost unknown"
    text = f"cost {format_cost(snapshot.cost)}"
    if snapshot.projected_cost is not None:
        text += f" (proj {format_cost(snapshot.projected_cost)})"
    unpriced = sum(snapshot.unpriced.values())
    if unpriced:
        text += f" + {unpriced:,} unpriced"
    return text


def _cache_text(snapshot: ProgressSnapshot) -> str:
    """How much of the input the prompt cache served and what that saved ("" before any cache use)."""
    usage = snapshot.usage
    if not (usage.cache_read_input_tokens or usage.cache_creation_input_tokens):
        return ""
    saved = f", saved {format_cost(snapshot.cache_saved)}" if snapshot.cache_saved > 0 else ""
    return f"cache reads {100.0 * snapshot.cache_read_share:.1f}% of input{saved}"


def _summary_cost(snapshot: ProgressSnapshot) -> str:
    """The summary's cost row: answers whose model has no price are named, never counted as free."""
    unpriced = sum(snapshot.unpriced.values())
    if not unpriced:
        return format_cost(snapshot.cost)
    models = ", ".join(sorted(snapshot.unpriced))
    note = f"{unpriced:,} answer(s) with no price for {models}"
    if snapshot.cost is None:
        return f"unknown ({note})"
    return f"{format_cost(snapshot.cost)} + unknown ({note})"


def _attempt_errors(snapshot: ProgressSnapshot) -> tuple[int, int, dict[str, int]]:
    failures = dict(snapshot.attempt_failures)
    return failures.pop("rate_limited", 0), failures.pop("overloaded", 0), failures


def render_plain(snapshot: ProgressSnapshot, *, minute: float = 60.0) -> str:
    """One log line for non-terminal output; per-minute figures are in the server's minutes of `minute` s."""
    limits = known_limits(snapshot)
    r429, r529, _ = _attempt_errors(snapshot)
    scale = minute / 60.0
    parts = [
        f"[{format_duration(snapshot.elapsed)}] {_progress_text(snapshot)}",
        format_rate(snapshot.completions_per_second),
        f"in {_of_limit(snapshot.input_tokens_per_minute, limits.input_tokens_per_minute, scale)}",
        f"out {_of_limit(snapshot.output_tokens_per_minute, limits.output_tokens_per_minute, scale)}",
        f"binding: {binding(snapshot)}",
        _in_flight(snapshot),
        f"429s {r429:,}",
        f"529s {r529:,}",
        f"failed {snapshot.failed + snapshot.invalid:,}",
        _cost_text(snapshot),
        f"eta {format_duration(snapshot.eta)}",
    ]
    if snapshot.aborted is not None:
        parts.append(f"aborted: {snapshot.aborted}")
    return " | ".join(parts)


def render_live(snapshot: ProgressSnapshot, *, minute: float = 60.0) -> RenderableType:
    """A compact panel: bar, rates against limits, binding gate, in-flight, errors, cost and ETA.

    Limits and token rates are per minute in the server's own terms: with a compressed-time emulator (`minute`
    real seconds per rate-limit minute) the panel's title says so once, and the figures match the server's.
    """
    limits = known_limits(snapshot)
    scale = minute / 60.0
    r429, r529, other = _attempt_errors(snapshot)
    head = Table.grid(padding=(0, 2))
    head.add_column()
    head.add_column()
    finished = snapshot.already_done + snapshot.done
    if snapshot.total is None:
        bar = ProgressBar(total=None, width=40)  # pulses: the input's length is not known
    else:
        # An empty input is complete: draw a full bar rather than divide by zero.
        completed = finished if snapshot.total else 1
        bar = ProgressBar(total=float(max(snapshot.total, 1)), completed=float(completed), width=40)
    head.add_row(bar, Text(_progress_text(snapshot)))
    rates = (
        f"{format_rate(snapshot.completions_per_second)}   "
        f"in {_of_limit(snapshot.input_tokens_per_minute, limits.input_tokens_per_minute, scale)}   "
        f"out {_of_limit(snapshot.output_tokens_per_minute, limits.output_tokens_per_minute, scale)}   "
        f"binding: {binding(snapshot)}"
    )
    if limits.requests_per_minute:
        rates += f"   requests limit {format_count(limits.requests_per_minute * scale)}/min"
    errors = f"{_in_flight(snapshot)}   429s {r429:,}   529s {r529:,}   other failed attempts: {format_kinds(other)}"
    outcome = f"this run: ok {snapshot.ok:,}   failed: {format_kinds(snapshot.failed_by_kind)}"
    if snapshot.skipped:
        outcome += f"   not sent {snapshot.skipped:,}"
    if snapshot.already_done:
        outcome += f"   finished in earlier runs {snapshot.already_done:,}"
    money = (
        f"{_cost_text(snapshot)}   eta {format_duration(snapshot.eta)}   elapsed {format_duration(snapshot.elapsed)}"
    )
    cache = _cache_text(snapshot)
    if cache:
        money += f"   {cache}"
    lines: list[RenderableType] = [head, Text(rates), Text(errors), Text(outcome), Text(money)]
    if snapshot.aborted is not None:
        lines.append(Text(f"aborted: {snapshot.aborted}", style="bold red"))
    title = "sluicegate" if minute == 60.0 else f"sluicegate (compressed time: 1 rate-limit minute = {minute:g} s)"
    return Panel(Group(*lines), title=title, title_align="left", expand=False)


def render_summary(snapshot: ProgressSnapshot, wall_time: float) -> RenderableType:
    """The final table: counts, wall time, tokens, cost, retries by reason and ceiling utilization."""
    table = Table(title="sluicegate summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    if snapshot.total is not None:
        table.add_row("items", f"{snapshot.total:,}")
    if snapshot.already_done:
        table.add_row("done earlier", f"{snapshot.already_done:,}")
    table.add_row("ok", f"{snapshot.ok:,}")
    failed = {k: n for k, n in snapshot.failed_by_kind.items() if k != "invalid_request"}
    failed_text = f"{snapshot.failed:,}" + (f" ({format_kinds(failed)})" if failed else "")
    table.add_row("failed", failed_text)
    table.add_row("invalid", f"{snapshot.invalid:,}")
    table.add_row("not sent", f"{snapshot.skipped:,} (stopped before sending, or a repeated id)")
    table.add_row("wall time", format_duration(wall_time))
    usage = snapshot.usage
    table.add_row("tokens in", f"{usage.input_tokens:,}")
    table.add_row("tokens out", f"{usage.output_tokens:,}")
    written = f"{usage.cache_creation_input_tokens:,} written"
    if usage.cache_creation_1h_input_tokens:
        written += f" ({usage.cache_creation_1h_input_tokens:,} with the 1h TTL)"
    cache = _cache_text(snapshot)
    table.add_row("cache", f"{usage.cache_read_input_tokens:,} read, {written}" + (f"; {cache}" if cache else ""))
    table.add_row("cost", _summary_cost(snapshot))
    table.add_row("retries", format_kinds(snapshot.retries_by_reason))
    util = utilization(snapshot, wall_time)
    if util is None:
        table.add_row("utilization", "n/a")
    else:
        # The ceiling is the steady refill rate; a job short enough to live off the server's full starting bucket
        # beats it, and a bare "154%" would read as a bug, so the reason is said.
        beyond = (
            " – above the steady rate: the server's starting allowance was spent first" if util.fraction > 1 else ""
        )
        table.add_row(
            "utilization",
            f"{100.0 * util.fraction:.1f}% ({format_rate(util.achieved)} of {format_rate(util.ceiling)}, "
            f"bound by {util.limit}){beyond}",
        )
    best = best_possible(snapshot)
    if best is not None and best > 0 and wall_time > 0:
        # The steady rate above ignores the starting allowance; this counts it, so it is the fraction of what the
        # limits allowed this run that was used (answers' latency aside).
        table.add_row(
            "of best possible",
            f"{100.0 * min(1.0, best / wall_time):.1f}% (a perfect client: {format_duration(best)}, "
            "starting from full buckets)",
        )
    if snapshot.aborted is not None:
        table.add_row("aborted", snapshot.aborted)
    return table
