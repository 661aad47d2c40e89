"""The Engine: lifecycle and dispatch of any number of requests over one HTTP client, gate and cost guard.

Each piece has its own module: the limiter and its shared pool (`_limiter_setup`), the admission and dispatch of
each run's items (`_dispatch`), the attempt policy (`_gate`), one item's attempts (`_item`), the cost guard
(`_cost_guard`), the counters (`_stats`) and the streaming handle (`_stream`).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2

from ._clock import Clock, SystemClock
from ._config import Timeouts
from ._cost_guard import CostGuard
from ._dispatch import Dispatcher
from ._environment import resolve_endpoint
from ._events import Event, EventSink
from ._exceptions import ConfigError, UsageError
from ._gate import AttemptGate
from ._item import ItemRunner
from ._limiter_setup import DEFAULT_BASE_URLS, build_limiter, close_limiter, open_limiter, shared_pool_name
from ._models import Result
from ._run import Run
from ._stats import Counters, EngineStatistics
from ._stream import TextStream
from ._wire import Wire, default_transport
from .limits.limiter import Limits
from .limits.protocol import LimiterLike
from .pricing import PriceTable, load_prices
from .providers import Provider
from .providers import get as get_provider
from .retry import RetryPolicy

__all__ = ["Engine", "TextStream", "shared_pool_name"]

log = logging.getLogger("sluicegate")

_DEFAULT_CAP = 512


class Engine:
    """Run requests at the ceiling the account's rate limits allow. Use as `async with Engine(...) as e:`.

    `api_key` and `base_url` left as None are read once from the provider's SDK variables, as the official
    clients do: ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, or OPENAI_API_KEY / OPENAI_BASE_URL. An argument wins.

    `prices` is the price table behind every cost (results, statistics and the `max_cost` cap): a PriceTable,
    the path of a price file in the format of the shipped `data/prices.json`, or None for the shipped table.

    `shared_limits="redis://HOST:PORT/DB"` keeps the limiter's buckets in Redis, shared by every process on the
    same key, base URL and rate-limit class (`shared_limits_name` names the pool explicitly instead).
    `shared_limits_fallback`: while that Redis is unreachable, run on 1/N of the limits locally instead of
    waiting for it (True: N = the pool's processes at the last heartbeat; an int: N itself, which also lets a run
    start without Redis). Off by default: never a silent fall back to unshared sending.
    """

    def __init__(
        self,
        *,
        provider: Literal["anthropic", "openai"] | Provider = "anthropic",
        api_key: str | None = None,
        base_url: str | None = None,
        default_params: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        max_cost: float | None = None,
        prices: PriceTable | str | os.PathLike[str] | None = None,
        output_accounting: Literal["produced", "reserved"] | None = None,
        minute: float | None = None,
        smooth: bool = False,
        stream: bool | Literal["auto"] = "auto",
        clock: Clock | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        sinks: Sequence[EventSink] = (),
        seed: int | None = None,
        shared_limits: str | None = None,
        shared_limits_name: str | None = None,
        shared_limits_fallback: bool | int = False,
    ) -> None:
        if max_cost is not None and max_cost <= 0:
            raise ConfigError("max_cost must be positive")
        self._provider: Provider = get_provider(provider) if isinstance(provider, str) else provider
        api_key, base_url = resolve_endpoint(self._provider.name, api_key, base_url)
        self._api_key = api_key
        self._base_url = base_url or DEFAULT_BASE_URLS[self._provider.name]
        self._defaults = dict(default_params or {})
        self._timeouts = timeouts or Timeouts()
        self._guard = CostGuard(load_prices(prices), max_cost)
        self._clock = clock or SystemClock()
        rng = random.Random(seed)
        self._cap = max_concurrency or _DEFAULT_CAP
        accounting = output_accounting or self._provider.output_accounting

        def pool() -> str:  # named only when the limits are shared
            model = self._defaults.get("model")
            return shared_limits_name or shared_pool_name(self._provider.name, api_key, base_url, model)

        self.limiter: LimiterLike = build_limiter(
            limits, clock=self._clock, max_concurrency=max_concurrency, minute=minute, smooth=smooth,
            output_accounting=accounting, rng=rng, shared_limits=shared_limits, shared_pool=pool,
            shared_limits_fallback=shared_limits_fallback,
        )  # fmt: skip
        self._gate = AttemptGate(retry=retry or RetryPolicy(), clock=self._clock, rng=rng, limiter=self.limiter)
        self._transport = transport
        self._sinks = list(sinks)
        self._wire: Wire | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._started = self._clock.now()
        self._counts = Counters()
        self._items = ItemRunner(
            provider=self._provider,
            base_url=self._base_url,
            timeouts=self._timeouts,
            stream_mode=stream,
            output_accounting=accounting,
            gate=self._gate,
            guard=self._guard,
            counts=self._counts,
            clock=self._clock,
            emit=self._emit,
            listening=bool(self._sinks),
            abort=lambda run, message, everyone: self._dispatcher.abort(run, message, everyone=everyone),
        )
        self._dispatcher = Dispatcher(
            items=self._items, guard=self._guard, provider=self._provider, defaults=self._defaults,
            counts=self._counts, clock=self._clock, cap=self._cap, emit=self._emit,
        )  # fmt: skip

    def __repr__(self) -> str:  # never shows the key
        return f"Engine(provider={self._provider.name!r}, base_url={self._base_url!r})"

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        if self._state != "new":
            raise UsageError("an Engine can be opened once; create a new one")
        await open_limiter(self.limiter)
        headers = {"content-type": "application/json", **self._provider.auth_headers(self._api_key)}
        # Connections for `cap` attempts in flight, plus a few for retries.
        transport = self._transport or default_transport(self._base_url, self._cap + 16)
        self._wire = self._items.wire = Wire(transport, headers=headers, timeouts=self._timeouts)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._state = "open"
        self._started = self._clock.now()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._tg is not None
        assert self._wire is not None
        self._state = "closed"
        self._dispatcher.cancel()
        try:
            await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:
            with anyio.CancelScope(shield=True):
                await self._wire.aclose()
            await close_limiter(self.limiter)  # opened first, closed last, in the same cancel scope

    def _require_open(self) -> None:
        if self._state != "open":
            raise UsageError("use the Engine inside `async with Engine(...) as engine:`")

    # -- public API ----------------------------------------------------------------------------------------

    async def create(self, **params: Any) -> Result:
        """Send one request through the limiter and retries; raise the final error as an exception."""
        result = await self._one(params)
        if result.error is not None:
            raise result.error.exception()
        return result

    async def map(self, requests: Iterable[Any] | AsyncIterable[Any], *, fail_fast: bool = False) -> list[Result]:
        """Results in input order. Failed items carry their error; nothing raises per item unless fail_fast."""
        run = self._start(requests, fill_aborted=True, fail_fast=fail_fast)
        results: dict[int, Result] = {}
        try:
            async with run.receive:
                async for result in run.receive:
                    results[result.index] = result
        finally:
            await self._dispatcher.stop_run(run)
        if fail_fast and run.error is not None:
            raise run.error
        return [results[i] for i in sorted(results)]

    async def as_completed(
        self, requests: Iterable[Any] | AsyncIterable[Any], *, fail_fast: bool = False
    ) -> AsyncIterator[Result]:
        """Results as they finish; raises RunAbortedError (BudgetExceededError) at the end if the run stopped."""
        run = self._start(requests, fill_aborted=False, fail_fast=fail_fast)
        try:
            async with run.receive:
                async for result in run.receive:
                    yield result
        finally:
            await self._dispatcher.stop_run(run)  # the consumer stopped early: stop the run's work too
        if run.error is not None:
            raise run.error

    def stop_admitting(self) -> None:
        """Graceful drain: take no new items and stop waiting retries; attempts in flight finish."""
        self._dispatcher.drain()

    def statistics(self) -> EngineStatistics:
        counts, guard = self._counts, self._guard
        return EngineStatistics(
            elapsed=self._clock.now() - self._started,
            submitted=counts.submitted,
            succeeded=counts.succeeded,
            failed=counts.failed,
            in_flight=counts.in_flight,
            usage=counts.usage,
            cost=guard.spent,
            reserved_cost=guard.budget.reserved,
            unpriced=dict(guard.unpriced),
            attempts=self._gate.attempts,
            failures_by_reason=dict(self._gate.failures),
            limiter=self.limiter.statistics(),
        )

    def share_cost_cap(self, other: Engine) -> None:
        """Count this engine's spend and requests in flight against `other`'s `max_cost` instead of its own: one cap
        over two engines (a flex engine and its standard fallback), each pricing at its own table. Call before
        either sends anything."""
        self._guard.budget = other._guard.budget
        self._guard.max_cost = other._guard.max_cost

    @asynccontextmanager
    async def stream(self, **params: Any) -> AsyncIterator[TextStream]:
        """Stream one request: `async for text in s.text_stream`, then `await s.result()`."""
        self._require_open()
        handle = TextStream()
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                try:
                    handle._finish(await self._one(params, on_text=handle._push))
                except BaseException as exc:
                    handle._fail(exc)
                    raise

            tg.start_soon(produce)
            try:
                yield handle
            finally:
                if not handle._done.is_set():
                    tg.cancel_scope.cancel()
                handle._receive.close()

    # -- dispatch (in `_dispatch`) -------------------------------------------------------------------------

    async def _one(self, params: Mapping[str, Any], on_text: Callable[[str], Awaitable[None]] | None = None) -> Result:
        self._require_open()
        return await self._dispatcher.one(params, on_text=on_text)

    def _start(self, requests: Iterable[Any] | AsyncIterable[Any], *, fill_aborted: bool, fail_fast: bool) -> Run:
        self._require_open()
        assert self._tg is not None
        return self._dispatcher.start(self._tg, requests, fill_aborted=fill_aborted, fail_fast=fail_fast)

    def _emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken display must not break the run
                log.exception("event sink %r failed", sink)
