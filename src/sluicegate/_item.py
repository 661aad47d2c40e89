"""One item's attempts: a pass from the gate, the request on the wire, then its Result or the next attempt."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

from ._attempt import AttemptResult, send_attempt
from ._clock import Clock
from ._config import Timeouts
from ._cost_guard import CostGuard
from ._events import (
    AttemptFailed,
    CooldownStarted,
    Event,
    LimitsObserved,
    RequestAdmitted,
    RequestCompleted,
    ResponseStarted,
)
from ._exceptions import InputError
from ._gate import AttemptGate, Pass
from ._models import ErrorInfo, RequestItem, Result, Usage
from ._run import Run
from ._stats import Counters
from ._wire import Wire
from .providers import Provider
from .tokens import InputEstimator, OutputEstimator

__all__ = ["ItemRunner"]

# Above this many output tokens a non-streaming call may sit silent for minutes: stream it, so the idle
# timeout measures silence instead of killing a healthy long generation.
_STREAM_ABOVE_MAX_TOKENS = 8192
# The probe (the first request, sent alone) streams where the stream is the same answer: its rate-limit headers
# come at the first token instead of after the whole generation, so the limiter opens up that much sooner.
# OpenAI-compatible servers may not report a stream's usage, so they are probed as configured.
_STREAMED_PROBE = frozenset({"anthropic"})

Abort = Callable[[Run, str, bool], None]  # (run, message, for every run of the engine)


class ItemRunner:
    """Runs items through the gate for one engine: estimates, waits for a pass, sends, settles, retries."""

    def __init__(
        self,
        *,
        provider: Provider,
        base_url: str,
        timeouts: Timeouts,
        stream_mode: bool | Literal["auto"],
        output_accounting: Literal["produced", "reserved"],
        gate: AttemptGate,
        guard: CostGuard,
        counts: Counters,
        clock: Clock,
        emit: Callable[[Event], None],
        listening: bool = True,
        abort: Abort,
    ) -> None:
        self._provider = provider
        self._base_url = base_url
        self._timeouts = timeouts
        self._stream_mode = stream_mode
        self._output_accounting = output_accounting
        self._gate = gate
        self._guard = guard
        self._counts = counts
        self._clock = clock
        self._emit = emit
        # No sink listens: the events of every attempt (admitted, started, limits, completed) are not even built.
        self._listening = listening
        self._abort = abort
        self.input_estimator = InputEstimator(provider=provider.name)
        self._output_estimator = OutputEstimator()
        self.wire: Wire | None = None

    def _cooldown_until(self) -> float:
        return self._gate.limiter.cooldown_until if self._gate.limiter is not None else 0.0

    def estimates(self, item: RequestItem, raw_in: int) -> tuple[int, int, int]:
        max_tokens = self._provider.max_tokens(item.params)
        est_in = self.input_estimator.calibrated(raw_in)
        reserve = max_tokens if self._output_accounting == "reserved" else self._output_estimator.reserve(max_tokens)
        return est_in, reserve, max_tokens

    async def wait_for_pass(self, run: Run, item: RequestItem, raw_in: int) -> Pass | None:
        """A pass for the item's next attempt; None when the run stopped meanwhile."""
        est_in, reserve, _ = self.estimates(item, raw_in)
        if run.halted:
            return None
        passed: Pass | None = None
        # The run cancels this scope when it stops, so a waiter leaves the limiter's queue at once. The input
        # estimate is made again at admission: the first answer may calibrate the estimator while this waits.
        estimate = functools.partial(self.input_estimator.calibrated, raw_in)
        with run.cancellable() as scope:
            passed = await self._gate.acquire(est_in, reserve, estimate=estimate)
        if scope.cancelled_caught:
            return None
        if passed is not None and run.halted:
            self._gate.unused(passed)
            return None
        return passed

    def halted(self, run: Run, item: RequestItem, attempts: int = 0) -> Result:
        result = run.halted_result(item, attempts)
        self._counts.failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        return result

    async def execute(
        self,
        run: Run,
        item: RequestItem,
        passed: Pass | None,
        raw_in: int,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Result:
        """The item's attempts; its cost-cap hold is released however they end."""
        try:
            return await self._attempts_of(run, item, passed, raw_in, on_text=on_text)
        finally:
            self._guard.budget.release(id(item))

    async def _attempts_of(
        self,
        run: Run,
        item: RequestItem,
        passed: Pass | None,
        raw_in: int,
        *,
        on_text: Callable[[str], Awaitable[None]] | None = None,
    ) -> Result:
        """Attempts through the gate until success, a final error, or the run stops. Always ends each pass."""
        wire = self.wire
        assert wire is not None
        model = self._provider.model(item.params)
        max_tokens = self._provider.max_tokens(item.params)
        # A line's own `"stream": true` is honoured (cache warm-up streams its primers to see their start).
        stream = on_text is not None or self._stream_mode is True or item.params.get("stream") is True
        stream = stream or (self._stream_mode == "auto" and max_tokens > _STREAM_ABOVE_MAX_TOKENS)
        url = self._provider.url(self._base_url, stream=stream)
        body = self._provider.body(item.params, stream=stream)
        first_at = self._clock.now()
        attempts = tries = 0  # sent; and those that used up the retry budget (a breaker's probe does not)
        while passed is not None:
            attempts += 1
            # The probe's first event counts its input: the estimator is calibrated from it there, not at the end
            # of the answer, so the requests admitted meanwhile are charged calibrated estimates.
            if not stream and self._probing(passed):
                counted = functools.partial(self.input_estimator.observe, raw_in)
                probe_url = self._provider.url(self._base_url, stream=True)
                probe_body = self._provider.body(item.params, stream=True)
                outcome = await self._send(item, passed, attempts, wire, probe_url, probe_body, True, on_text, counted)
            else:
                outcome = await self._send(item, passed, attempts, wire, url, body, stream, on_text)
            now = self._clock.now()
            if outcome.failure is None and outcome.message is not None:
                usage = outcome.usage or Usage()
                self._gate.succeeded(passed, usage)
                if not outcome.input_counted:
                    self.input_estimator.observe(raw_in, usage.total_input_tokens)
                self._output_estimator.observe(usage.output_tokens, max_tokens)
                result = Result(
                    index=item.index,
                    custom_id=item.custom_id,
                    message=outcome.message,
                    usage=usage,
                    cost=self._guard.charge(model, usage),
                    attempts=attempts,
                    latency=now - first_at,
                    ttft=outcome.first_token_after,
                )
                self._counts.success(usage)
                if self._listening:
                    self._emit(RequestCompleted(at=now, result=result))
                return result
            assert outcome.failure is not None
            failure = replace(outcome.failure, elapsed=now - first_at)
            message = outcome.detail.message if outcome.detail else failure.reason
            verdict = self._gate.failed(passed, failure, tries + 1, snapshot=outcome.snapshot, message=message)
            tries += verdict.counts
            decision = verdict.decision
            if decision.abort_run:
                self._abort(run, f"{decision.kind}: {message}", True)
            if verdict.cooled:
                self._emit(CooldownStarted(at=now, until=self._cooldown_until()))
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
                    return self.halted(run, item, attempts)
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
            try:
                passed = await self.wait_for_pass(run, item, raw_in)
            except InputError as exc:
                return self.refused(item, exc, attempts, self._clock.now() - first_at)
        return self.halted(run, item, attempts)

    def _probing(self, passed: Pass) -> bool:
        """This attempt probes, streamed (where that is the same answer) for early headers: the first request
        (no answer yet), or one the breaker let through while open or ramping, whose 200 moves it on at once."""
        if self._provider.name not in _STREAMED_PROBE:
            return False
        first = self._gate.limiter is not None and not self._gate.answered
        return first or self._gate.held(passed)

    def refused(self, item: RequestItem, exc: InputError, attempts: int, latency: float) -> Result:
        """A request no rate-limit bucket can ever hold: an errored result at once, never a silent stall."""
        error = ErrorInfo(kind="invalid_request", message=str(exc), line=item.line)
        result = Result(index=item.index, custom_id=item.custom_id, error=error, attempts=attempts, latency=latency)
        self._counts.failed += 1
        self._gate.failures["too_large_for_rate_limit"] += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        return result

    async def _send(
        self,
        item: RequestItem,
        passed: Pass,
        attempt: int,
        wire: Wire,
        url: str,
        body: Mapping[str, Any],
        stream: bool,
        on_text: Callable[[str], Awaitable[None]] | None,
        on_input_counted: Callable[[int], None] | None = None,
    ) -> AttemptResult:
        """One attempt on the wire; the limiter learns the headers as they arrive, the gate that the host answered."""
        self._counts.in_flight += 1
        if passed.permit is not None and self._listening:
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
                wire,
                self._provider,
                url=url,
                body=body,
                stream=stream,
                total_timeout=self._timeouts.total,
                on_text=on_text,
                on_headers=self._gate.headers_observer(passed),
                on_start=self._on_start(item, attempt),
                on_accepted=functools.partial(self._gate.accepted, passed) if self._gate.held(passed) else None,
                on_input_counted=on_input_counted,
            )
        finally:
            self._counts.in_flight -= 1
            if outcome is None:  # cancelled mid-attempt
                self._gate.cancelled(passed)
        if outcome.responded:
            now = self._clock.now()
            self._gate.observe(None, now)  # the headers themselves were observed when they arrived
            if self._listening and outcome.snapshot is not None and not outcome.snapshot.empty:
                self._emit(LimitsObserved(at=now, snapshot=outcome.snapshot))
        return outcome

    def _on_start(self, item: RequestItem, attempt: int) -> Callable[[], None] | None:
        """What tells the sinks that an attempt's answer began (nothing when no sink listens)."""
        if not self._listening:
            return None

        def started() -> None:
            now = self._clock.now()
            self._emit(ResponseStarted(at=now, index=item.index, custom_id=item.custom_id, attempt=attempt))

        return started

    def _final_error(self, run: Run, item: RequestItem, error: ErrorInfo, attempts: int, latency: float) -> Result:
        result = Result(index=item.index, custom_id=item.custom_id, error=error, attempts=attempts, latency=latency)
        self._counts.failed += 1
        self._emit(RequestCompleted(at=self._clock.now(), result=result))
        if run.fail_fast and run.error is None:
            self._abort(run, f"fail-fast: item {item.custom_id!r} failed: {error.message}", False)
        return result
