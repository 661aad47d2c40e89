"""The Engine: one shared HTTP client, the limiter and the retry policy, over any number of requests.

Consumption is lazy and bounded: a dispatcher takes one input item at a time, waits for the limiter to admit
it, and only then starts a task for it, so live tasks are bounded by the concurrency (plus items waiting to
retry), never by the input size.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Literal

import anyio
import httpx2

from ._attempt import AttemptResult, send_attempt
from ._clock import Clock, SystemClock
from ._config import Timeouts
from ._cost_guard import CostGuard
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
from ._exceptions import ConfigError, SluicegateError, UsageError
from ._gate import AttemptGate, Pass
from ._models import ErrorInfo, RequestItem, Result, Usage
from ._run import Run, iterate_items
from ._stats import Counters, EngineStatistics
from ._stream import TextStream
from .limits.limiter import Limiter, Limits
from .pricing import PriceTable, load_prices
from .providers import Provider
from .providers import get as get_provider
from .retry import RetryPolicy
from .tokens import InputEstimator, OutputEstimator

__all__ = ["Engine", "TextStream"]

log = logging.getLogger("sluicegate")

_DEFAULT_BASE_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}
_DEFAULT_CAP = 512
_BACKOFF_ROOM = 1024  # items that may wait out a backoff beyond the concurrency bound
# Above this many output tokens a non-streaming call may sit silent for minutes: stream it, so the idle
# timeout measures silence instead of killing a healthy long generation.
_STREAM_ABOVE_MAX_TOKENS = 8192


class Engine:
    """Run requests at the ceiling the account's rate limits allow. Use as `async with Engine(...) as e:`.

    `prices` is the price table behind every cost (results, statistics and the `max_cost` cap): a PriceTable,
    the path of a price file in the format of the shipped `data/prices.json`, or None for the shipped table.
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
        minute: float = 60.0,
        stream: bool | Literal["auto"] = "auto",
        clock: Clock | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        sinks: Sequence[EventSink] = (),
        seed: int | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError("api_key is required (the CLI reads ANTHROPIC_API_KEY / OPENAI_API_KEY)")
        if max_cost is not None and max_cost <= 0:
            raise ConfigError("max_cost must be positive")
        self._provider: Provider = get_provider(provider) if isinstance(provider, str) else provider
        self._api_key = api_key
        self._base_url = base_url or _DEFAULT_BASE_URLS[self._provider.name]
        self._defaults = dict(default_params or {})
        self._timeouts = timeouts or Timeouts()
        self._guard = CostGuard(load_prices(prices), max_cost)
        self._output_accounting = output_accounting or self._provider.output_accounting
        self._stream_mode = stream
        self._clock = clock or SystemClock()
        rng = random.Random(seed)
        self._cap = max_concurrency or _DEFAULT_CAP
        self.limiter = Limiter(limits, clock=self._clock, max_concurrency=max_concurrency, minute=minute, rng=rng)
        self._gate = AttemptGate(retry=retry or RetryPolicy(), clock=self._clock, rng=rng, limiter=self.limiter)
        self._transport = transport
        self._sinks = list(sinks)
        self._input_estimator = InputEstimator(provider=self._provider.name)
        self._output_estimator = OutputEstimator()
        self._client: httpx2.AsyncClient | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._runs: set[Run] = set()
        self._started = self._clock.now()
        self._counts = Counters()

    def __repr__(self) -> str:  # never shows the key
        return f"Engine(provider={self._provider.name!r}, base_url={self._base_url!r})"

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        if self._state != "new":
            raise UsageError("an Engine can be opened once; create a new one")
        headers = {"content-type": "application/json", **self._provider.auth_headers(self._api_key)}
        timeout = httpx2.Timeout(
            connect=self._timeouts.connect, read=self._timeouts.idle, write=self._timeouts.idle, pool=None
        )
        if self._transport is not None:
            self._client = httpx2.AsyncClient(transport=self._transport, headers=headers, timeout=timeout)
        else:
            self._client = httpx2.AsyncClient(headers=headers, timeout=timeout, limits=pool_limits(self._cap))
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

    def _require_open(self) -> httpx2.AsyncClient:
        if self._state != "open" or self._client is None:
            raise UsageError("use the Engine inside `async with Engine(...) as engine:`")
        return self._client

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

    def stop_admitting(self) -> None:
        """Graceful drain: take no new items and stop waiting retries; attempts in flight finish."""
        for run in list(self._runs):
            run.drain()

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
            reserved_cost=guard.reserved,
            unpriced=dict(guard.unpriced),
            attempts=self._gate.attempts,
            failures_by_reason=dict(self._gate.failures),
            limiter=self.limiter.statistics(),
        )

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

    # -- dispatch ------------------------------------------------------------------------------------------

    async def _one(self, params: Mapping[str, Any], on_text: Callable[[str], Awaitable[None]] | None = None) -> Result:
        """One request outside any map(): its own single-item run, its result returned rather than streamed."""
        self._require_open()
        run = Run(buffer=1, fill_aborted=False, fail_fast=True)
        run.close_streams()
        (item,) = [x async for x in iterate_items([params], self._defaults)]
        raw_in = self._input_estimator.raw(item.params)
        passed = await self._admit(run, item, raw_in)
        if passed is None:
            return self._halted(run, item)
        return await self._execute(run, item, passed, raw_in, on_text=on_text)

    def _start(self, requests: Iterable[Any] | AsyncIterable[Any], *, fill_aborted: bool, fail_fast: bool) -> Run:
        self._require_open()
        assert self._tg is not None
        run = Run(buffer=256, fill_aborted=fill_aborted, fail_fast=fail_fast)
        self._runs.add(run)
        self._tg.start_soon(self._dispatch, run, requests)
        return run

    async def _stop_run(self, run: Run) -> None:
        """Cancel what is left of a run and wait until its tasks have released their slots."""
        run.scope.cancel()
        with anyio.CancelScope(shield=True):
            await run.finished.wait()

    async def _dispatch(self, run: Run, requests: Iterable[Any] | AsyncIterable[Any]) -> None:
        # Admitted items plus items waiting to retry stay below this, so memory is bounded by concurrency. Items
        # in backoff hold no concurrency slot, so the bound is wider than the cap: a few backing off must not
        # hold up the items behind them.
        outstanding = anyio.Semaphore(4 * self._cap + _BACKOFF_ROOM)
        try:
            async with run.send:
                with run.scope:
                    async with anyio.create_task_group() as tg:
                        async for item in iterate_items(requests, self._defaults):
                            if run.halted:
                                if run.fill_aborted:
                                    await run.send.send(self._halted(run, item))
                                    continue
                                break
                            await outstanding.acquire()
                            self._counts.submitted += 1
                            raw_in = self._input_estimator.raw(item.params)
                            passed = await self._admit(run, item, raw_in)
                            if passed is None:
                                outstanding.release()
                                await run.send.send(self._halted(run, item))
                                continue
                            tg.start_soon(self._item_task, run, item, passed, raw_in, outstanding)
        except SluicegateError as exc:  # bad input from an iterable: stop the run and say why
            run.abort(str(exc))
            self._emit(RunAborted(at=self._clock.now(), reason=str(exc)))
        finally:
            self._runs.discard(run)
            run.finished.set()

    async def _item_task(
        self, run: Run, item: RequestItem, passed: Pass, raw_in: int, outstanding: anyio.Semaphore
    ) -> None:
        try:
            await run.send.send(await self._execute(run, item, passed, raw_in))
        finally:
            outstanding.release()

    def _estimates(self, item: RequestItem, raw_in: int) -> tuple[int, int, int]:
        max_tokens = self._provider.max_tokens(item.params)
        est_in = self._input_estimator.calibrated(raw_in)
        reserve = max_tokens if self._output_accounting == "reserved" else self._output_estimator.reserve(max_tokens)
        return est_in, reserve, max_tokens

    async def _admit(self, run: Run, item: RequestItem, raw_in: int) -> Pass | None:
        """Wait for the cost guard and the gate; None when the run stopped meanwhile."""
        est_in, reserve, max_tokens = self._estimates(item, raw_in)
        refusal = self._guard.refusal(self._provider.model(item.params), est_in, max_tokens)
        if refusal is not None:
            self._abort(run, refusal, kind="budget_exceeded", budget=True)
            return None
        return await self._wait_for_pass(run, est_in, reserve)

    async def _wait_for_pass(self, run: Run, est_in: int, reserve: int) -> Pass | None:
        if run.halted:
            return None
        passed: Pass | None = None
        # The run cancels this scope when it stops, so a waiter leaves the limiter's queue at once.
        with run.cancellable() as scope:
            passed = await self._gate.acquire(est_in, reserve)
        if scope.cancelled_caught:
            return None
        if passed is not None and run.halted:
            self._gate.unused(passed)
            return None
        return passed

    def _halted(self, run: Run, item: RequestItem, attempts: int = 0) -> Result:
        result = run.halted_result(item, attempts)
        self._counts.failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        return result

    def _abort(
        self, run: Run, message: str, *, kind: Any = "aborted", budget: bool = False, everyone: bool = False
    ) -> None:
        if run.error is None:
            run.abort(message, kind=kind, budget=budget)
            self._emit(RunAborted(at=self._clock.now(), reason=message))
        if everyone:  # a bad key, an empty account or an unreachable host is the same for every run
            for other in list(self._runs):
                if other.error is None:
                    other.abort(message, kind="aborted")

    # -- one item's attempts -------------------------------------------------------------------------------

    async def _execute(
        self,
        run: Run,
        item: RequestItem,
        passed: Pass | None,
        raw_in: int,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Result:
        """Attempts through the gate until success, a final error, or the run stops. Always ends each pass."""
        client = self._client
        assert client is not None
        model = self._provider.model(item.params)
        max_tokens = self._provider.max_tokens(item.params)
        stream = on_text is not None or self._stream_mode is True
        stream = stream or (self._stream_mode == "auto" and max_tokens > _STREAM_ABOVE_MAX_TOKENS)
        url = self._provider.url(self._base_url, stream=stream)
        body = self._provider.body(item.params, stream=stream)
        first_at = self._clock.now()
        attempts = tries = 0  # sent; and those that used up the retry budget (a breaker's probe does not)
        while passed is not None:
            attempts += 1
            outcome = await self._send(item, passed, attempts, model, max_tokens, client, url, body, stream, on_text)
            now = self._clock.now()
            if outcome.failure is None and outcome.message is not None:
                usage = outcome.usage or Usage()
                self._gate.succeeded(passed, usage)
                self._input_estimator.observe(raw_in, usage.total_input_tokens)
                self._output_estimator.observe(usage.output_tokens, max_tokens)
                result = Result(
                    index=item.index,
                    custom_id=item.custom_id,
                    message=outcome.message,
                    usage=usage,
                    cost=self._guard.charge(model, usage),
                    attempts=attempts,
                    latency=now - first_at,
                )
                self._counts.success(usage)
                self._emit(RequestCompleted(at=now, result=result))
                return result
            assert outcome.failure is not None
            failure = replace(outcome.failure, elapsed=now - first_at)
            verdict = self._gate.failed(passed, failure, tries + 1)
            tries += verdict.counts
            decision = verdict.decision
            message = outcome.detail.message if outcome.detail else decision.reason
            if decision.abort_run:
                self._abort(run, f"{decision.kind}: {message}", everyone=True)
            if verdict.cooled:
                self._emit(CooldownStarted(at=now, until=self.limiter.cooldown_until))
            will_retry = decision.retry and not run.halted and not outcome.text_sent
            self._emit(
                AttemptFailed(
                    at=now,
                    index=item.index,
                    custom_id=item.custom_id,
                    attempt=attempts,
                    reason=failure.reason,
                    status=failure.status,
                    will_retry=will_retry,
                    delay=verdict.wait if will_retry else None,
                    message=message,
                )
            )
            if not will_retry:
                if decision.retry and run.halted:
                    return self._halted(run, item, attempts)
                if decision.reason != failure.reason:
                    message = f"{message} ({decision.reason.replace('_', ' ')})"
                error = ErrorInfo(
                    kind=decision.kind,
                    message=message,
                    status=failure.status,
                    error_type=outcome.detail.error_type if outcome.detail else None,
                    request_id=outcome.detail.request_id if outcome.detail else None,
                    line=item.line,
                )
                return self._final_error(run, item, error, attempts, now - first_at)
            with run.cancellable():
                await self._gate.back_off(verdict)
            est_in, reserve, _ = self._estimates(item, raw_in)
            passed = await self._wait_for_pass(run, est_in, reserve)
        return self._halted(run, item, attempts)

    async def _send(
        self,
        item: RequestItem,
        passed: Pass,
        attempt: int,
        model: str,
        max_tokens: int,
        client: httpx2.AsyncClient,
        url: str,
        body: Mapping[str, Any],
        stream: bool,
        on_text: Callable[[str], Awaitable[None]] | None,
    ) -> AttemptResult:
        """One attempt on the wire, with its cost held in flight; the gate observes whatever answered."""
        self._counts.in_flight += 1
        worst = self._guard.reserve(model, passed.permit.input_tokens if passed.permit else 0, max_tokens)
        if passed.permit is not None:
            self._emit(
                RequestAdmitted(
                    at=passed.admitted_at,
                    index=item.index,
                    custom_id=item.custom_id,
                    attempt=attempt,
                    input_tokens_estimate=passed.permit.input_tokens,
                    output_tokens_reserved=passed.permit.output_tokens,
                    in_flight=self._counts.in_flight,
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
            )
        finally:
            self._counts.in_flight -= 1
            self._guard.unreserve(worst)
            if outcome is None:  # cancelled mid-attempt
                self._gate.cancelled(passed)
        if outcome.responded:
            now = self._clock.now()
            self._gate.observe(outcome.snapshot, now)
            if outcome.snapshot is not None and not outcome.snapshot.empty:
                self._emit(LimitsObserved(at=now, snapshot=outcome.snapshot))
        return outcome

    def _final_error(self, run: Run, item: RequestItem, error: ErrorInfo, attempts: int, latency: float) -> Result:
        result = Result(index=item.index, custom_id=item.custom_id, error=error, attempts=attempts, latency=latency)
        self._counts.failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        if run.fail_fast and run.error is None:
            self._abort(run, f"fail-fast: item {item.custom_id!r} failed: {error.message}")
        return result

    def _emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken display must not break the run
                log.exception("event sink %r failed", sink)


def pool_limits(cap: int) -> httpx2.Limits:
    """Connections for `cap` attempts in flight (plus a few for retries and token counting)."""
    return httpx2.Limits(max_connections=cap + 16, max_keepalive_connections=cap + 16)
