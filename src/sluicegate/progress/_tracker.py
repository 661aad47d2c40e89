"""ProgressTracker: the event sink that keeps a run's counts, totals and sliding-window rates."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import floor
from types import MappingProxyType

from .._clock import Clock
from .._events import (
    AttemptFailed,
    CooldownStarted,
    Event,
    LimitsObserved,
    RequestAdmitted,
    RequestCompleted,
    RunAborted,
)
from .._models import RateLimitSnapshot, Usage
from .._stats import EngineStatistics

__all__ = ["ObservedLimits", "ProgressSnapshot", "ProgressTracker"]

# Error kinds that mean "not attempted to the end": the jobs layer keeps these items pending for a re-run.
SKIPPED_KINDS = frozenset({"aborted", "budget_exceeded"})


@dataclass(frozen=True, slots=True)
class ObservedLimits:
    """Per-minute limits last seen in response headers (None: that bucket was never reported)."""

    requests_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Everything a renderer needs, frozen at one instant of the tracker's clock.

    `done` counts items finished in this run (`already_done` were finished by an earlier run of the same job).
    `skipped` items were not finished (aborted, over budget, or skipped by the caller) and stay pending.
    Rates cover the last `window` seconds; `eta` is None while no rate is known, 0 when nothing remains.
    Cost fields are None when prices are unknown; `cost` sums the answers whose model has a price, and `unpriced`
    counts by model the answers whose cost is unknown (the projection is None while there are any).
    """

    now: float
    elapsed: float
    total: int | None
    already_done: int
    done: int
    ok: int
    failed_by_kind: Mapping[str, int]
    skipped: int
    sent: int  # finished items that went out at least once (attempts > 0)
    attempt_failures: Mapping[str, int]  # failed attempts by reason, retried or not
    retries_by_reason: Mapping[str, int]
    usage: Usage
    cost: float | None
    projected_cost: float | None
    completions_per_second: float
    input_tokens_per_minute: float  # rate-limited input tokens (uncached + cache writes), as ITPM counts them
    output_tokens_per_minute: float
    window: float
    eta: float | None
    cooldown_remaining: float
    aborted: str | None
    observed_limits: ObservedLimits
    statistics: EngineStatistics | None = None
    in_flight: int = 0
    admitted: int = 0
    unpriced: Mapping[str, int] = field(default_factory=dict)
    cache_saved: float = 0.0  # USD the prompt cache saved: the priced answers' cost without caching, less their cost

    @property
    def cache_read_share(self) -> float:
        """The part of all input tokens read from the prompt cache (0 with no input yet)."""
        total = self.usage.total_input_tokens
        return self.usage.cache_read_input_tokens / total if total else 0.0

    @property
    def failed(self) -> int:
        """Items that ended in an error other than invalid input or a skip."""
        return sum(n for kind, n in self.failed_by_kind.items() if kind != "invalid_request")

    @property
    def invalid(self) -> int:
        return self.failed_by_kind.get("invalid_request", 0)

    @property
    def retries(self) -> int:
        return sum(self.retries_by_reason.values())

    @property
    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.already_done - self.done)


class _Slot:
    """One time bucket of the sliding window."""

    __slots__ = ("completions", "input_tokens", "key", "output_tokens")

    def __init__(self, key: int) -> None:
        self.key = key
        self.completions = 0
        self.input_tokens = 0
        self.output_tokens = 0


class ProgressTracker:
    """Pure progress state, fed by engine events (use it as a sink); `snapshot()` freezes it for rendering.

    Rates come from a ring of `window / resolution` time buckets, so memory stays constant however long the
    run: a completion lands in the bucket of its clock second, old buckets fall off the front.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        total: int | None = None,
        already_done: int = 0,
        price_known: bool = True,
        uncached_cost: Callable[[str, Usage], float | None] | None = None,
        window: float = 30.0,
        resolution: float = 1.0,
    ) -> None:
        if window <= 0 or resolution <= 0 or resolution > window:
            raise ValueError("need 0 < resolution <= window")
        self._clock = clock
        self._start = clock.now()
        self._total = total
        self._already_done = already_done
        self._price_known = price_known
        # What an answer would have cost with no prompt cache (every input token at the input price): the money the
        # cache saved is that less its real cost.
        self._uncached_cost = uncached_cost
        self._cache_saved = 0.0
        self._resolution = resolution
        self._slots_max = max(1, round(window / resolution))
        self._window: deque[_Slot] = deque(maxlen=self._slots_max)
        self._done = 0
        self._ok = 0
        self._sent = 0
        self._skipped = 0
        self._failed: Counter[str] = Counter()
        self._attempt_failures: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()
        self._input_tokens = 0
        self._output_tokens = 0
        self._cache_write_tokens = 0
        self._cache_write_1h_tokens = 0
        self._cache_read_tokens = 0
        self._cost = 0.0
        self._unpriced: Counter[str] = Counter()
        self._admitted = 0
        self._in_flight = 0
        self._cooldown_until = self._start
        self._aborted: str | None = None
        self._limits = ObservedLimits()

    @property
    def window_buckets(self) -> int:
        """How many time buckets the sliding window holds now (bounded by window / resolution)."""
        return len(self._window)

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        """Known later for big inputs: the runner counts lines in a thread while the first requests go out."""
        self._total = value

    @property
    def already_done(self) -> int:
        """Items finished by earlier runs of the same job."""
        return self._already_done

    @already_done.setter
    def already_done(self, value: int) -> None:
        """Known once the job's store is open, after the display may have started."""
        self._already_done = value

    def __call__(self, event: Event) -> None:
        """Take one engine event; cheap and never raises on a well-formed event."""
        if isinstance(event, RequestCompleted):
            self._completed(event)
        elif isinstance(event, RequestAdmitted):
            self._admitted += 1
            self._in_flight = event.in_flight
        elif isinstance(event, AttemptFailed):
            self._attempt_failures[event.reason] += 1
            if event.will_retry:
                self._retries[event.reason] += 1
        elif isinstance(event, LimitsObserved):
            self._observe(event.snapshot)
        elif isinstance(event, CooldownStarted):
            self._cooldown_until = max(self._cooldown_until, event.until)
        elif isinstance(event, RunAborted):
            self._aborted = event.reason

    def skip(self, count: int = 1) -> None:
        """Count items the caller decided not to send in this run (they stay pending)."""
        self._done += count
        self._skipped += count

    def _completed(self, event: RequestCompleted) -> None:
        result = event.result
        self._done += 1
        if result.ok:
            self._ok += 1
        elif result.error is not None and result.error.kind in SKIPPED_KINDS:
            self._skipped += 1
        else:
            self._failed[result.error.kind if result.error is not None else "unknown"] += 1
        if result.attempts > 0:
            self._sent += 1
        usage = result.usage
        self._input_tokens += usage.input_tokens
        self._output_tokens += usage.output_tokens
        self._cache_write_tokens += usage.cache_creation_input_tokens
        self._cache_write_1h_tokens += usage.cache_creation_1h_input_tokens
        self._cache_read_tokens += usage.cache_read_input_tokens
        if result.cost is not None:
            self._cost += result.cost
            cached = usage.cache_read_input_tokens or usage.cache_creation_input_tokens
            if cached and self._uncached_cost is not None and result.message is not None:
                model = str(result.message.get("model") or "")
                plain = Usage(input_tokens=usage.total_input_tokens, output_tokens=usage.output_tokens)
                full, listed = self._uncached_cost(model, plain), self._uncached_cost(model, usage)
                if full is not None and listed:
                    # At the rate this answer was billed (a flex or batch answer at half the listed price), so a
                    # tier's discount is not counted as the cache's saving.
                    self._cache_saved += (full - listed) * result.cost / listed
        elif result.message is not None:  # an answer with no price: its cost is unknown, not 0
            self._unpriced[str(result.message.get("model") or "?")] += 1
        slot = self._slot_for(event.at)
        slot.completions += 1
        slot.input_tokens += usage.rate_limited_input_tokens
        slot.output_tokens += usage.output_tokens

    def _slot_for(self, at: float) -> _Slot:
        key = floor(at / self._resolution)
        if self._window and self._window[-1].key >= key:
            # Events arrive in clock order; a late one (same or earlier bucket) is counted in the newest bucket.
            return self._window[-1]
        slot = _Slot(key)
        self._window.append(slot)  # maxlen drops the oldest
        return slot

    def _observe(self, snapshot: RateLimitSnapshot) -> None:
        old = self._limits

        def pick(view: object, previous: float | None) -> float | None:
            limit = getattr(view, "limit", None)
            return float(limit) if limit else previous

        self._limits = ObservedLimits(
            requests_per_minute=pick(snapshot.requests, old.requests_per_minute),
            input_tokens_per_minute=pick(snapshot.input_tokens, old.input_tokens_per_minute),
            output_tokens_per_minute=pick(snapshot.output_tokens, old.output_tokens_per_minute),
            tokens_per_minute=pick(snapshot.tokens, old.tokens_per_minute),
        )

    def _rates(self, now: float) -> tuple[float, float, float, float]:
        """(completions/s, input tokens/min, output tokens/min, seconds covered) over the window ending now."""
        newest_key = floor(now / self._resolution)
        oldest_key = newest_key - self._slots_max + 1
        span = now - max(self._start, oldest_key * self._resolution)
        if span <= 0:
            return 0.0, 0.0, 0.0, 0.0
        completions = in_tokens = out_tokens = 0
        for slot in self._window:
            if oldest_key <= slot.key <= newest_key:
                completions += slot.completions
                in_tokens += slot.input_tokens
                out_tokens += slot.output_tokens
        return completions / span, in_tokens * 60.0 / span, out_tokens * 60.0 / span, span

    def snapshot(self, stats: EngineStatistics | None = None) -> ProgressSnapshot:
        """Freeze the current state; `stats` (the engine's statistics) adds limits, in-flight and binding."""
        now = self._clock.now()
        per_second, in_per_minute, out_per_minute, span = self._rates(now)
        remaining = None if self._total is None else max(0, self._total - self._already_done - self._done)
        eta: float | None = None
        if remaining == 0:
            eta = 0.0
        elif remaining is not None and per_second > 0:
            eta = remaining / per_second
        unpriced = sum(self._unpriced.values())
        cost = self._cost if self._price_known and (unpriced == 0 or unpriced < self._ok) else None
        projected: float | None = None
        if cost is not None and not unpriced and remaining is not None and self._done > 0:
            # Average cost of an item finished in this run times the items this run handles in all.
            projected = cost / self._done * (self._done + remaining)
        in_flight = stats.in_flight if stats is not None else self._in_flight
        cooldown = max(0.0, self._cooldown_until - now)
        if stats is not None:
            cooldown = max(cooldown, stats.limiter.cooldown_remaining)
        return ProgressSnapshot(
            now=now,
            elapsed=now - self._start,
            total=self._total,
            already_done=self._already_done,
            done=self._done,
            ok=self._ok,
            failed_by_kind=MappingProxyType(dict(self._failed)),
            skipped=self._skipped,
            sent=self._sent,
            attempt_failures=MappingProxyType(dict(self._attempt_failures)),
            retries_by_reason=MappingProxyType(dict(self._retries)),
            usage=Usage(
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
                cache_creation_input_tokens=self._cache_write_tokens,
                cache_read_input_tokens=self._cache_read_tokens,
                cache_creation_1h_input_tokens=self._cache_write_1h_tokens,
            ),
            cost=cost,
            projected_cost=projected,
            completions_per_second=per_second,
            input_tokens_per_minute=in_per_minute,
            output_tokens_per_minute=out_per_minute,
            window=span,
            eta=eta,
            cooldown_remaining=cooldown,
            aborted=self._aborted,
            observed_limits=self._limits,
            statistics=stats,
            in_flight=in_flight,
            admitted=self._admitted,
            unpriced=MappingProxyType(dict(self._unpriced)),
            cache_saved=self._cache_saved,
        )
