"""The Engine: one shared HTTP client, the limiter and the retry policy, over any number of requests.

Consumption is lazy and bounded: a dispatcher takes one input item at a time, waits for the limiter to admit
it, and only then starts a task for it, so live tasks are bounded by the concurrency (plus items waiting to
retry), never by the input size.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2

from ._attempt import AttemptResult, send_attempt
from ._budget import CostBudget
from ._clock import Clock, SystemClock
from ._config import Timeouts
from ._events import (
    AttemptFailed,
    CooldownStarted,
    Event,
    EventSink,
    LimitsObserved,
    RequestAdmitted,
    RequestCompleted,
    RunAborted,
)
from ._exceptions import (
    AttemptTimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    InputError,
    OverloadedError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    RunAbortedError,
    ServerError,
    SluicegateError,
    TransportError,
    UsageError,
)
from ._models import ErrorInfo, RequestItem, Result, Usage
from ._run import Run, iterate_items
from ._stats import EngineStatistics
from .limits._pool import pool_name, rate_limit_class
from .limits.limiter import Limiter, Limits
from .limits.protocol import AdmissionPermit as Permit
from .limits.protocol import LimiterLike
from .pricing import PriceTable, load_prices
from .providers import Provider
from .providers import get as get_provider
from .retry import RetryPolicy, decide
from .tokens import InputEstimator, OutputEstimator

__all__ = ["Engine", "shared_pool_name"]

log = logging.getLogger("sluicegate")

_DEFAULT_BASE_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}
_DEFAULT_CAP = 512
# Above this many output tokens a non-streaming call may sit silent for minutes: stream it, so the idle
# timeout measures silence instead of killing a healthy long generation.
_STREAM_ABOVE_MAX_TOKENS = 8192


class Engine:
    """Run requests at the ceiling the account's rate limits allow. Use as `async with Engine(...) as e:`.

    `prices` is the price table behind every cost (results, statistics and the `max_cost` cap): a PriceTable,
    the path of a price file in the format of the shipped `data/prices.json`, or None for the shipped table.

    `shared_limits="redis://HOST:PORT/DB"` keeps the limiter's buckets in Redis, shared by every process on the
    same key, base URL and rate-limit class (`shared_limits_name` names the pool explicitly instead).
    """

    def __init__(
        self,
        *,
        provider: Literal["anthropic", "openai"] | Provider = "anthropic",
        api_key: str,
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
    ) -> None:
        if not api_key:
            raise ConfigError("api_key is required (the CLI reads ANTHROPIC_API_KEY / OPENAI_API_KEY)")
        if max_cost is not None and max_cost <= 0:
            raise ConfigError("max_cost must be positive")
        self._provider: Provider = get_provider(provider) if isinstance(provider, str) else provider
        self._api_key = api_key
        self._base_url = base_url or _DEFAULT_BASE_URLS[self._provider.name]
        self._defaults = dict(default_params or {})
        self._retry = retry or RetryPolicy()
        self._timeouts = timeouts or Timeouts()
        self._max_cost = max_cost
        # Every cost figure (results, statistics, the max_cost cap) comes from this one table.
        self._prices = load_prices(prices)
        self._output_accounting = output_accounting or self._provider.output_accounting
        self._stream_mode = stream
        self._clock = clock or SystemClock()
        self._rng = random.Random(seed)
        self._cap = max_concurrency or _DEFAULT_CAP
        # `minute` only overrides the windows the limiter learns from the headers; `smooth` skips the burst.
        self.limiter: LimiterLike = Limiter(
            limits,
            clock=self._clock,
            max_concurrency=max_concurrency,
            minute=minute,
            smooth=smooth,
            output_accounting=self._output_accounting,
            rng=self._rng,
        )
        if shared_limits is not None:  # the same limiter, its state in a Redis pool shared by every process
            try:
                from .limits.shared import SharedLimiter
            except ImportError as exc:
                raise ConfigError("shared_limits needs the redis client: pip install 'sluicegate[redis]'") from exc
            name = shared_limits_name or shared_pool_name(
                self._provider.name, api_key, base_url, self._defaults.get("model")
            )
            self.limiter = SharedLimiter(
                shared_limits, name=name, limits=limits, clock=self._clock, max_concurrency=max_concurrency,
                minute=minute, rng=self._rng,
            )  # fmt: skip
        self._transport = transport
        self._sinks = list(sinks)
        self._input_estimator = InputEstimator(provider=self._provider.name)
        self._output_estimator = OutputEstimator()
        self._client: httpx2.AsyncClient | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._runs: set[Run] = set()
        # statistics
        self._started = self._clock.now()
        self._submitted = 0
        self._succeeded = 0
        self._failed = 0
        self._in_flight = 0
        self._attempts = 0
        self._usage = Usage()
        self._cost = 0.0
        self._budget = CostBudget(max_cost)
        self._unpriced: Counter[str] = Counter()  # successes by model whose price is not in the table
        self._failures: Counter[str] = Counter()

    def __repr__(self) -> str:  # never shows the key
        return f"Engine(provider={self._provider.name!r}, base_url={self._base_url!r})"

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        if self._state != "new":
            raise UsageError("an Engine can be opened once; create a new one")
        await _open_limiter(self.limiter)
        headers = {"content-type": "application/json", **self._provider.auth_headers(self._api_key)}
        timeout = httpx2.Timeout(
            connect=self._timeouts.connect, read=self._timeouts.idle, write=self._timeouts.idle, pool=None
        )
        pool = httpx2.Limits(max_connections=self._cap + 16, max_keepalive_connections=self._cap + 16)
        if self._transport is not None:
            self._client = httpx2.AsyncClient(transport=self._transport, headers=headers, timeout=timeout)
        else:
            self._client = httpx2.AsyncClient(headers=headers, timeout=timeout, limits=pool)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._state = "open"
        self._started = self._clock.now()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._tg is not None
        assert self._client is not None
        self._state = "closed"
        for run in list(self._runs):
            run.scope.cancel()
        try:
            await self._tg.__aexit__(*exc_info)  # type: ignore[arg-type]
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()
            await _close_limiter(self.limiter)  # opened first, closed last, in the same cancel scope

    def _require_open(self) -> httpx2.AsyncClient:
        if self._state != "open" or self._client is None:
            raise UsageError("use the Engine inside `async with Engine(...) as engine:`")
        return self._client

    # -- public API ----------------------------------------------------------------------------------------

    async def create(self, **params: Any) -> Result:
        """Send one request through the limiter and retries; raise the final error as an exception."""
        self._require_open()
        run = Run(buffer=1, fill_aborted=False, fail_fast=True)
        run.close_streams()  # one request: its result is returned, not streamed
        items = [x async for x in iterate_items([params], self._defaults)]
        item = items[0]
        raw_in = self._input_estimator.raw(item.params)
        permit = await self._admit(run, item, raw_in)
        result = self._halted(run, item) if permit is None else await self._execute(run, item, permit, raw_in)
        if result.error is not None:
            raise _exception_for(result.error)
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
            await self._stop_run(run)
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
            await self._stop_run(run)  # the consumer stopped early: stop the run's work too
        if run.error is not None:
            raise run.error

    async def _stop_run(self, run: Run) -> None:
        """Cancel what is left of a run and wait until its tasks have released their slots."""
        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.finished.wait()

    def stop_admitting(self) -> None:
        """Graceful drain: take no new items and stop waiting retries; attempts in flight finish."""
        for run in list(self._runs):
            run.drain()

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            elapsed=self._clock.now() - self._started,
            submitted=self._submitted,
            succeeded=self._succeeded,
            failed=self._failed,
            in_flight=self._in_flight,
            usage=self._usage,
            cost=self._cost,
            reserved_cost=self._budget.reserved,
            unpriced=dict(self._unpriced),
            attempts=self._attempts,
            failures_by_reason=dict(self._failures),
            limiter=self.limiter.statistics(),
        )

    @asynccontextmanager
    async def stream(self, **params: Any) -> AsyncIterator[TextStream]:
        """Stream one request: `async for text in s.text_stream`, then `await s.result()`."""
        self._require_open()
        run = Run(buffer=1, fill_aborted=False, fail_fast=True)
        run.close_streams()  # one request: its result is returned, not streamed
        items = [x async for x in iterate_items([params], self._defaults)]
        handle = TextStream()
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                try:
                    raw_in = self._input_estimator.raw(items[0].params)
                    permit = await self._admit(run, items[0], raw_in)
                    result = (
                        self._halted(run, items[0])
                        if permit is None
                        else await self._execute(run, items[0], permit, raw_in, on_text=handle._push, force_stream=True)
                    )
                    handle._finish(result)
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

    # -- the run -------------------------------------------------------------------------------------------

    def _start(self, requests: Iterable[Any] | AsyncIterable[Any], *, fill_aborted: bool, fail_fast: bool) -> Run:
        self._require_open()
        assert self._tg is not None
        run = Run(buffer=256, fill_aborted=fill_aborted, fail_fast=fail_fast)
        self._runs.add(run)
        self._tg.start_soon(self._dispatch, run, requests)
        return run

    async def _dispatch(self, run: Run, requests: Iterable[Any] | AsyncIterable[Any]) -> None:
        # Items admitted plus items waiting to retry stay below this, so memory is bounded by concurrency.
        outstanding = anyio.Semaphore(2 * self._cap)
        try:
            async with run.send:
                with run.scope:
                    async with anyio.create_task_group() as tg:
                        items = iterate_items(requests, self._defaults)
                        async for item in items:
                            if run.halted:
                                if run.fill_aborted:
                                    await run.send.send(self._halted(run, item))
                                    continue
                                break
                            await outstanding.acquire()
                            self._submitted += 1
                            raw_in = self._input_estimator.raw(item.params)
                            try:
                                permit = await self._admit(run, item, raw_in)
                            except InputError as exc:  # larger than a bucket: the server would refuse it forever
                                outstanding.release()
                                await run.send.send(self._refused(item, exc, 0, 0.0))
                                continue
                            if permit is None:
                                outstanding.release()
                                await run.send.send(self._halted(run, item))
                                continue
                            tg.start_soon(self._item_task, run, item, permit, raw_in, outstanding)
        except SluicegateError as exc:  # bad input from an iterable: stop the run and say why
            run.abort(str(exc))
            self._emit(RunAborted(at=self._clock.now(), reason=str(exc)))
        finally:
            self._runs.discard(run)
            run.finished.set()

    async def _item_task(
        self, run: Run, item: RequestItem, permit: Permit, raw_in: int, outstanding: anyio.Semaphore
    ) -> None:
        try:
            result = await self._execute(run, item, permit, raw_in)
            await run.send.send(result)
        finally:
            outstanding.release()

    def _estimates(self, item: RequestItem, raw_in: int) -> tuple[int, int, int]:
        max_tokens = self._provider.max_tokens(item.params)
        est_in = self._input_estimator.calibrated(raw_in)
        reserve = max_tokens if self._output_accounting == "reserved" else self._output_estimator.reserve(max_tokens)
        return est_in, reserve, max_tokens

    async def _admit(self, run: Run, item: RequestItem, raw_in: int) -> Permit | None:
        """Wait for the cost cap and the limiter; None when the run stopped meanwhile."""
        est_in, reserve, max_tokens = self._estimates(item, raw_in)
        if self._max_cost is not None:
            model = self._provider.model(item.params)
            worst = self._prices.estimate_cost(model, est_in, max_tokens)
            if worst is None:
                self._abort(
                    run,
                    f"no price is known for model {model!r}, so the cost cap cannot be enforced",
                    kind="budget_exceeded",
                    budget=True,
                )
                return None
            likely = self._prices.estimate_cost(model, est_in, reserve) or worst
            # Money only reserved by requests in flight is not spent: wait for their answers before deciding.
            while (verdict := self._budget.verdict(worst, likely)) == "wait":
                with run.cancellable() as scope:
                    await self._budget.wait_settled()
                if scope.cancelled_caught or run.halted:
                    return None
            if verdict == "stop":
                self._abort(
                    run,
                    f"the cost cap of ${self._max_cost:.2f} is reached: ${self._budget.spent:.4f} spent, and the next "
                    f"request would likely cost ${likely:.4f} (up to ${worst:.4f})",
                    kind="budget_exceeded",
                    budget=True,
                )
                return None
            self._budget.reserve(id(item), worst, likely)
        permit = await self._wait_for_permit(run, est_in, reserve)
        if permit is None:
            self._budget.release(id(item))
        return permit

    async def _wait_for_permit(self, run: Run, est_in: int, reserve: int) -> Permit | None:
        if run.halted:
            return None
        permit: Permit | None = None
        # The run cancels this scope when it stops, so a waiter leaves the limiter's queue at once.
        with run.cancellable() as scope:
            permit = await self.limiter.acquire(est_in, reserve)
        if scope.cancelled_caught:
            return None
        if permit is not None and run.halted:
            permit.release()
            return None
        return permit

    def _halted(self, run: Run, item: RequestItem, attempts: int = 0) -> Result:
        result = run.halted_result(item, attempts)
        self._failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        return result

    def _abort(self, run: Run, message: str, *, kind: Any = "aborted", budget: bool = False) -> None:
        if run.error is None:
            run.abort(message, kind=kind, budget=budget)
            self._emit(RunAborted(at=self._clock.now(), reason=message))
        # A bad key or an empty account is the same for every run of this engine.
        if kind in ("authentication", "quota_exceeded"):
            for other in list(self._runs):
                if other.error is None:
                    other.abort(message, kind="aborted")

    async def _execute(
        self,
        run: Run,
        item: RequestItem,
        permit: Permit | None,
        raw_in: int,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
        force_stream: bool = False,
    ) -> Result:
        """The item's attempts; its cost-cap hold is released however they end."""
        try:
            return await self._attempts_of(run, item, permit, raw_in, on_text=on_text, force_stream=force_stream)
        finally:
            self._budget.release(id(item))

    async def _attempts_of(
        self,
        run: Run,
        item: RequestItem,
        permit: Permit | None,
        raw_in: int,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
        force_stream: bool = False,
    ) -> Result:
        """Attempts until success, a final error, or the run stops. Always releases what it holds."""
        client = self._client
        assert client is not None
        params = item.params
        model = self._provider.model(params)
        max_tokens = self._provider.max_tokens(params)
        stream = force_stream or (
            self._stream_mode is True or (self._stream_mode == "auto" and max_tokens > _STREAM_ABOVE_MAX_TOKENS)
        )
        url = self._provider.url(self._base_url, stream=stream)
        body = self._provider.body(params, stream=stream)
        first_at = self._clock.now()
        attempts = 0
        while True:
            if permit is None:
                return self._halted(run, item, attempts)
            attempts += 1
            self._attempts += 1
            self._in_flight += 1
            self._emit(
                RequestAdmitted(
                    at=permit.admitted_at,
                    index=item.index,
                    custom_id=item.custom_id,
                    attempt=attempts,
                    input_tokens_estimate=permit.input_tokens,
                    output_tokens_reserved=permit.output_tokens,
                    in_flight=self._in_flight,
                )
            )
            outcome: AttemptResult | None = None
            try:
                outcome = await send_attempt(
                    client,
                    self._provider,
                    url=url,
                    headers={},
                    body=body,
                    stream=stream,
                    total_timeout=self._timeouts.total,
                    on_text=on_text,
                    on_headers=functools.partial(self.limiter.observe, since=permit.admitted_at),
                )
            finally:
                self._in_flight -= 1
                if outcome is None:  # cancelled mid-attempt: the server may have counted it
                    permit.release(charged=True)
            now = self._clock.now()
            self._observe(outcome, now)
            if outcome.failure is None and outcome.message is not None:
                usage = outcome.usage or Usage()
                permit.settle(usage)
                self._input_estimator.observe(raw_in, usage.total_input_tokens)
                self._output_estimator.observe(usage.output_tokens, max_tokens)
                cost = self._prices.cost(model, usage)
                if cost is None:
                    if not self._unpriced[model]:
                        log.warning("no price for model %r in the price table: its cost is unknown", model)
                    self._unpriced[model] += 1
                result = Result(
                    index=item.index,
                    custom_id=item.custom_id,
                    message=outcome.message,
                    usage=usage,
                    cost=cost,
                    attempts=attempts,
                    latency=now - first_at,
                    ttft=outcome.first_token_after,
                )
                self._succeeded += 1
                self._usage = self._usage + usage
                self._cost += cost or 0.0
                self._budget.spend(cost or 0.0)
                self._emit(RequestCompleted(at=now, result=result))
                return result
            failure = outcome.failure
            assert failure is not None
            failure = _with_elapsed(failure, now - first_at)
            decision = decide(self._retry, failure, attempts, self._rng)
            held = (permit.input_tokens, permit.output_tokens, permit.admitted_at)
            # A 429 was refused before any work; anything else may have been counted by the server.
            permit.release(charged=failure.status not in (429, None) or failure.failure == "transport")
            permit = None
            detail = outcome.detail
            message = detail.message if detail else decision.reason
            # What failed (a 429, a 529, a reset), whatever the decision; the give-up reason goes in the message.
            reason = failure.failure if failure.failure != "status" else decision.kind
            self._failures[reason] += 1
            if decision.abort_run:
                self._abort(run, f"{decision.kind}: {message}", kind="aborted")
            elif failure.status == 429 and self.limiter.rate_limited(
                outcome.snapshot, held[0], held[1], message, admitted_at=held[2]
            ):
                pass  # a short-interval limit: the limiter now paces that bucket smoothly; no shared pause
            elif decision.cooldown or (failure.status == 429 and failure.retry_after):
                # Even when this item gives up, the server's 429 holds for everyone else.
                pause = (
                    decision.delay
                    if decision.cooldown
                    else min(failure.retry_after or 0.0, self._retry.max_retry_after)
                )
                self.limiter.cool_down(pause)
                self._emit(CooldownStarted(at=now, until=self.limiter.cooldown_until))
            elif decision.kind in ("overloaded", "server") or failure.failure in ("connect", "timeout"):
                self.limiter.overloaded()
            will_retry = decision.retry and not run.halted and not outcome.text_sent
            self._emit(
                AttemptFailed(
                    at=now,
                    index=item.index,
                    custom_id=item.custom_id,
                    attempt=attempts,
                    reason=reason,
                    status=failure.status,
                    will_retry=will_retry,
                    delay=decision.delay if will_retry else None,
                    message=message,
                )
            )
            if not will_retry:
                if decision.reason != reason:
                    message = f"{message} ({decision.reason.replace('_', ' ')})"
                if decision.retry and run.halted:
                    return self._halted(run, item, attempts)
                return self._final_error(run, item, attempts, now - first_at, decision.kind, message, failure, detail)
            if not decision.cooldown:  # after a 429 the limiter's cool-down is the wait, shared by everyone
                with run.cancellable():
                    await anyio.sleep(decision.delay)
            est_in, reserve, _ = self._estimates(item, raw_in)
            try:
                permit = await self._wait_for_permit(run, est_in, reserve)
            except InputError as exc:
                return self._refused(item, exc, attempts, self._clock.now() - first_at)

    def _refused(self, item: RequestItem, exc: InputError, attempts: int, latency: float) -> Result:
        """A request no rate-limit bucket can ever hold: an errored result at once, never a silent stall."""
        error = ErrorInfo(kind="invalid_request", message=str(exc), line=item.line)
        result = Result(index=item.index, custom_id=item.custom_id, error=error, attempts=attempts, latency=latency)
        self._failed += 1
        self._failures["too_large_for_rate_limit"] += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        return result

    def _observe(self, outcome: AttemptResult, now: float) -> None:
        snapshot = outcome.snapshot
        if snapshot is not None and not snapshot.empty:
            # The limiter already learnt from these headers when they arrived (send_attempt's on_headers).
            self._emit(LimitsObserved(at=now, snapshot=snapshot))
        elif outcome.responded:
            self.limiter.saw_response()

    def _final_error(
        self,
        run: Run,
        item: RequestItem,
        attempts: int,
        latency: float,
        kind: Any,
        message: str,
        failure: Any,
        detail: Any,
    ) -> Result:
        error = ErrorInfo(
            kind=kind,
            message=message,
            status=failure.status,
            error_type=detail.error_type if detail else None,
            request_id=detail.request_id if detail else None,
            line=item.line,
        )
        result = Result(index=item.index, custom_id=item.custom_id, error=error, attempts=attempts, latency=latency)
        self._failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        if run.fail_fast and run.error is None:
            self._abort(run, f"fail-fast: item {item.custom_id!r} failed: {message}")
        return result

    def _emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken display must not break the run
                log.exception("event sink %r failed", sink)


def shared_pool_name(provider: str, api_key: str, base_url: str | None, model: str | None) -> str:
    """The shared-limits pool of a key, endpoint (None: the provider's default) and model's rate-limit class."""
    return pool_name(api_key, base_url or _DEFAULT_BASE_URLS[provider], rate_limit_class(provider, model))


async def _open_limiter(limiter: LimiterLike) -> None:
    """A shared limiter connects to its pool (raising SharedLimitsUnavailableError); a local one has nothing to do."""
    opener = getattr(limiter, "open", None)
    if opener is not None:
        await opener()


async def _close_limiter(limiter: LimiterLike) -> None:
    closer = getattr(limiter, "aclose", None)
    if closer is not None:
        await closer()


def _with_elapsed(failure: Any, elapsed: float) -> Any:
    from dataclasses import replace

    return replace(failure, elapsed=elapsed)


def _exception_for(error: ErrorInfo) -> SluicegateError:
    """The exception `create()` raises for a final error."""
    kw: dict[str, Any] = {"status": error.status or 0, "error_type": error.error_type, "request_id": error.request_id}
    kind = error.kind
    if kind == "invalid_request":
        return BadRequestError(error.message, **kw)
    if kind == "authentication":
        return AuthenticationError(error.message, **kw)
    if kind == "quota_exceeded":
        return QuotaExceededError(error.message, **kw)
    if kind == "rate_limited":
        return RateLimitedError(error.message, **kw)
    if kind == "overloaded":
        return OverloadedError(error.message, **kw)
    if kind == "server":
        return ServerError(error.message, **kw)
    if kind == "transport":
        return AttemptTimeoutError(error.message) if "timeout" in error.message else TransportError(error.message)
    if kind == "budget_exceeded":
        from ._exceptions import BudgetExceededError

        return BudgetExceededError(error.message)
    if error.status:
        return ProviderError(error.message, **kw)
    return RunAbortedError(error.message)


class TextStream:
    """A streaming answer: `text_stream` yields text as it arrives; `await result()` gives the final Result."""

    def __init__(self) -> None:
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        self._send = send
        self._receive = receive
        self._done = anyio.Event()
        self._result: Result | None = None
        self._exc: BaseException | None = None

    async def _push(self, text: str) -> None:
        await self._send.send(text)

    def _finish(self, result: Result) -> None:
        self._result = result
        self._send.close()
        self._done.set()

    def _fail(self, exc: BaseException) -> None:
        self._exc = exc
        self._send.close()
        self._done.set()

    @property
    def text_stream(self) -> AsyncIterator[str]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[str]:
        async for text in self._receive:
            yield text
        await self._check()

    async def _check(self) -> Result:
        await self._done.wait()
        if self._exc is not None:
            raise self._exc
        assert self._result is not None
        if self._result.error is not None:
            raise _exception_for(self._result.error)
        return self._result

    async def result(self) -> Result:
        """Wait for the end of the stream (consuming what is left) and return the final Result."""
        with contextlib.suppress(anyio.ClosedResourceError):  # already closed: the stream was consumed
            async for _ in self._receive:
                pass
        return await self._check()
