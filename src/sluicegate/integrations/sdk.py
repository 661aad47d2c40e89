"""SDK drop-in: an httpx2 transport that gives `anthropic`/`openai` clients sluicegate's limiter and retries.

Existing code keeps its client and gains the shared limiter and retry policy with a one-line change::

    import anthropic
    from sluicegate.integrations.sdk import http_client

    client = anthropic.AsyncAnthropic(max_retries=0, http_client=http_client(provider="anthropic"))
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=[...])

To share one limiter across several clients or tasks, build the transport once::

    import httpx2, openai, sluicegate
    from sluicegate.integrations.sdk import LimitedTransport

    shared = LimitedTransport(provider="openai", retry=sluicegate.RetryPolicy(max_attempts=8))
    client = openai.AsyncOpenAI(max_retries=0, http_client=httpx2.AsyncClient(transport=shared))

Only the generation endpoint (`POST …/v1/messages`, `POST …/chat/completions`) is limited and retried; token
counting, batches and model listing pass straight through. Pass `max_retries=0` to the SDK so only one retry
layer exists; every failure this transport gives up on carries `x-should-retry: false`, so even an SDK left
with its default retries does not retry it again.

After a 401/403 or a spend-cap/quota 429 the transport refuses further requests made with the same key without
sending them: it answers at once with a copy of that failing response (same status, headers and body, plus
`x-sluicegate-refused: true`), so the SDK raises its own error (`AuthenticationError`, `RateLimitError`, …).
Other keys sharing the transport are unaffected; use a new transport once the key or account is fixed.

Closing a client closes its transport; a shared `LimitedTransport` then drops its idle connections only when
nothing is in flight through it, and stays usable (new connections are opened on demand), so one client
closing does not break the others.

Until the first answer one request goes out alone; an unstreamed Anthropic request sent then goes out streamed
so its rate-limit headers open the limiter at the first byte, and comes back as the unstreamed Message
(`_probe.py`). So do the requests the breaker lets through during an overload: their 200's headers close it.

Waiting for capacity happens before the inner transport is called, so it does not count against the SDK's
timeout; the timeout applies to each attempt on the wire. Reading, decoding and rebuilding raw responses is in
`_sdk_wire.py`.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import anyio
import httpx2

from .._attempt import status_outcome, stream_error_outcome, transport_outcome
from .._clock import Clock, SystemClock
from .._exceptions import InputError
from .._gate import AttemptGate, Pass
from .._models import RateLimitSnapshot, Usage
from .._stats import LimiterStatistics
from .._transport import EngineTransport
from ..limits._pool import pool_name, rate_limit_class
from ..limits.limiter import Limiter, Limits
from ..limits.protocol import LimiterLike
from ..providers import get as get_provider
from ..providers.base import ErrorDetail
from ..retry import RetryPolicy
from ..tokens import InputEstimator, OutputEstimator
from ._metered import METER, MeteredStream
from ._probe import ProbeAssembly, probe_request, probe_response, stream_error_response
from ._sdk_wire import _decoded, _extensions, _is_sse, _key_fingerprint, _read_raw, _rebuilt, _Refusal

__all__ = ["LimitedTransport", "http_client"]

_ENDPOINTS = {"anthropic": "/v1/messages", "openai": "/chat/completions"}
_DEFAULT_CAP = 512
# As the engine's: OpenAI-compatible servers may not report a stream's usage, so they are probed as asked.
_STREAMED_PROBE = frozenset({"anthropic"})


class LimitedTransport(httpx2.AsyncBaseTransport):
    """Wraps an `httpx2.AsyncHTTPTransport`: every generation request waits for the limiter and is retried here.

    `limits=None` learns the limits and their windows from the rate-limit headers; `minute` overrides the windows (for
    emulated servers). `output_accounting` is how the account's server counts output tokens ("produced", the
    default for the provider, or "reserved": `max_tokens` at admission, the unused part refunded at the end);
    `smooth=True` paces evenly from the first request instead of spending what the server says is left at once.
    `transport` replaces the inner transport (its pool is otherwise sized to the cap).

    A request no rate-limit bucket can ever hold (more input tokens, or with reserved accounting more
    `max_tokens`, than a whole minute's limit) is answered at once with a 400 `invalid_request_error` that names
    the limit, instead of waiting forever; the SDK raises its `BadRequestError`.
    """

    def __init__(
        self,
        *,
        provider: Literal["anthropic", "openai"] = "anthropic",
        limits: Limits | None = None,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        minute: float | None = None,
        output_accounting: Literal["produced", "reserved"] | None = None,
        smooth: bool = False,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        shared_limits: str | None = None,
        shared_limits_name: str | None = None,
        shared_limits_fallback: bool | int = False,
    ) -> None:
        self._provider = get_provider(provider)
        self._endpoint = _ENDPOINTS[self._provider.name]
        self._clock = clock or SystemClock()
        rng = self._rng = random.Random(seed)
        self._accounting = output_accounting or self._provider.output_accounting
        self._streamed_probe = self._provider.name in _STREAMED_PROBE
        self.limiter: LimiterLike = Limiter(
            limits,
            clock=self._clock,
            max_concurrency=max_concurrency,
            minute=minute,
            smooth=smooth,
            output_accounting=self._accounting,
            rng=rng,
        )
        self.gate = AttemptGate(retry=retry or RetryPolicy(), clock=self._clock, rng=rng, limiter=self.limiter)
        # `shared_limits="redis://..."`: the limiter's state lives in Redis, shared with every process on the same
        # key; it is opened by the first request (which names the key, the endpoint and the model).
        self._shared: dict[str, Any] | None = None
        if shared_limits is not None:
            self._shared = {
                "url": shared_limits, "name": shared_limits_name, "limits": limits,
                "max_concurrency": max_concurrency, "minute": minute, "fallback": shared_limits_fallback,
                "smooth": smooth, "open": False,
            }  # fmt: skip
        self._shared_lock = anyio.Lock()
        if transport is None:  # the engine's own transport: far less CPU per request than httpx2's
            transport = EngineTransport(connections=(max_concurrency or _DEFAULT_CAP) + 16)
        self._inner = transport
        self._input = InputEstimator(provider=self._provider.name)
        self._output = OutputEstimator()
        self._refusals: dict[str, _Refusal] = {}
        self._active = 0  # requests inside this transport plus metered streams still open

    def __repr__(self) -> str:
        return f"LimitedTransport(provider={self._provider.name!r})"

    @property
    def attempts(self) -> int:
        """Generation requests sent to the server, retries included."""
        return self.gate.attempts

    @property
    def failures(self) -> Counter[str]:
        """Failed attempts by reason ("rate_limited", "overloaded", ...)."""
        return self.gate.failures

    def statistics(self) -> LimiterStatistics:
        """The shared limiter's state: in flight, concurrency limit, learnt limits, binding gate, cool-down."""
        return self.limiter.statistics()

    async def aclose(self) -> None:
        """Close the inner transport's connections unless requests are in flight (another client sharing this
        transport may be using them). Closing a client that uses this transport calls it."""
        if self._active == 0:
            await self._inner.aclose()
            if self._shared is not None and self._shared["open"]:
                self._shared["open"] = False
                await self.limiter.aclose()  # type: ignore[attr-defined]

    async def _open_shared(self, request: httpx2.Request, params: Mapping[str, Any]) -> None:
        """Join the Redis pool of this request's key, endpoint and model class (once; again after aclose)."""
        assert self._shared is not None
        async with self._shared_lock:
            if self._shared["open"]:
                return
            from ..limits.shared import SharedLimiter

            url = str(request.url.copy_with(query=None))
            base = url[: -len(self._endpoint)] if url.endswith(self._endpoint) else url
            auth = request.headers.get("authorization", "")
            secret = request.headers.get("x-api-key") or auth.removeprefix("Bearer ")
            model = params.get("model")
            name = self._shared["name"] or pool_name(
                secret, base, rate_limit_class(self._provider.name, model if isinstance(model, str) else None)
            )
            limiter = SharedLimiter(
                self._shared["url"], name=name, limits=self._shared["limits"], clock=self._clock,
                max_concurrency=self._shared["max_concurrency"], minute=self._shared["minute"], rng=self._rng,
                output_accounting=self._accounting, fallback=self._shared["fallback"], smooth=self._shared["smooth"],
            )  # fmt: skip
            await limiter.open()
            self.limiter = self.gate.limiter = limiter
            self._shared["open"] = True

    # -- one request ---------------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._active += 1
        streaming = False
        try:
            response = await self._route(request)
            streaming = isinstance(response.stream, MeteredStream)
            return response
        finally:
            if not streaming:  # a metered stream stays active until it ends
                self._active -= 1

    async def _route(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.endswith(self._endpoint):
            return await self._inner.handle_async_request(request)
        try:
            params = json.loads(await request.aread())
        except ValueError:
            params = None
        if not isinstance(params, dict):  # not a body we understand: let the server judge it
            return await self._inner.handle_async_request(request)
        return await self._limited(request, params)

    async def _limited(self, request: httpx2.Request, params: dict[str, Any]) -> httpx2.Response:
        key = _key_fingerprint(request.headers)
        if self._shared is not None and not self._shared["open"]:
            await self._open_shared(request, params)
        stream = params.get("stream") is True
        max_tokens = self._provider.max_tokens(params)
        raw_in = self._input.raw(params)
        first_at = self._clock.now()
        attempt = 0
        while True:
            refusal = self._refusals.get(key)
            if refusal is not None:
                return refusal.response()
            try:
                # Estimated again at admission: gathered requests all queue before the first answer calibrates.
                passed = await self.gate.acquire(
                    self._input.calibrated(raw_in),
                    self._reserve(max_tokens),
                    estimate=functools.partial(self._input.calibrated, raw_in),
                )
            except InputError as exc:  # larger than a bucket: the server would refuse it every time
                self.gate.failures["too_large_for_rate_limit"] += 1
                return self._too_large(str(exc), exc.field)
            refusal = self._refusals.get(key)  # the key may have been refused while this request waited
            if refusal is not None:
                self.gate.unused(passed)
                return refusal.response()
            attempt += 1
            # The probe (sent alone until the first answer) streams, so its headers open the limiter at once; so
            # does an attempt the breaker let through while open or ramping: its 200's headers move it on.
            held = self.gate.held(passed)
            probe = not stream and self._streamed_probe and (held or not self.gate.answered)
            try:
                response = await self._inner.handle_async_request(probe_request(request, params) if probe else request)
                if response.is_success and _is_sse(response):
                    self._observe(response, passed)
                    if held:
                        self.gate.accepted(passed)
                    if stream:
                        return self._metered(response, passed, raw_in, max_tokens)
                    whole = await self._assembled(response, passed, raw_in, max_tokens)
                    if isinstance(whole, httpx2.Response):
                        return whole
                    if whole is None:
                        continue  # answered in a form the assembly does not reproduce: ask again, unstreamed
                    outcome = replace(stream_error_outcome(whole), elapsed=self._elapsed(first_at))
                    verdict = self.gate.failed(passed, outcome, attempt)
                    if not verdict.retry:
                        return stream_error_response(response, whole, outcome.status or 500)
                    await self.gate.back_off(verdict)
                    continue
                body = await _read_raw(response)
                # Only now: the first response widens the limiter's one-request probe, and waiters must not
                # slip through while a 401 or spend-cap body is still being read.
                snapshot = self._observe(response, passed)
            except httpx2.TransportError as exc:
                outcome, _ = transport_outcome(exc)
                verdict = self.gate.failed(passed, replace(outcome, elapsed=self._elapsed(first_at)), attempt)
                attempt -= not verdict.counts
                if not verdict.retry:
                    raise
                await self.gate.back_off(verdict)
                continue
            except BaseException:  # cancelled mid-attempt: the server may have counted it
                self.gate.cancelled(passed)
                raise
            if response.is_success:
                self._settle(passed, response.headers, body, raw_in, max_tokens)
                return _rebuilt(response, body)
            outcome, detail = status_outcome(
                self._provider, response.status_code, response.headers, _decoded(response.headers, body)
            )
            outcome = replace(outcome, elapsed=self._elapsed(first_at))
            verdict = self.gate.failed(passed, outcome, attempt, snapshot=snapshot, message=detail.message)
            attempt -= not verdict.counts  # a breaker's probe does not use up this request's attempts
            if verdict.decision.abort_run and outcome.kind != "unreachable":
                self._refusals[key] = _Refusal(response.status_code, response.headers, body)
            if not verdict.retry:
                return _rebuilt(response, body, final=True)
            await self.gate.back_off(verdict)

    # -- accounting ----------------------------------------------------------------------------------------

    def _reserve(self, max_tokens: int) -> int:
        if self._accounting == "reserved":
            return max_tokens
        return self._output.reserve(max_tokens)

    def _elapsed(self, first_at: float) -> float:
        return self._clock.now() - first_at

    def _observe(self, response: httpx2.Response, passed: Pass) -> RateLimitSnapshot:
        """Learn the headers of any answer, a 200's included, as the engine does: with the admission time, so
        buckets modelled emptier than the server says are raised to what it says is left."""
        snapshot = self._provider.rate_limits(response.headers, time.time())
        observer = self.gate.headers_observer(passed)
        if observer is not None and not snapshot.empty:
            observer(snapshot)
        self.gate.observe(None)  # the host answered
        return snapshot

    def _too_large(self, message: str, field: str | None) -> httpx2.Response:
        """The API's own 400 for a request no bucket can hold, so the SDK raises BadRequestError with the reason."""
        if self._provider.name == "anthropic":
            error: dict[str, Any] = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        else:
            error = {"error": {"message": message, "type": "invalid_request_error", "param": field, "code": None}}
        headers = {"content-type": "application/json", "x-should-retry": "false", "x-sluicegate-refused": "true"}
        return httpx2.Response(400, headers=headers, content=json.dumps(error).encode())

    def _learn(self, usage: Usage, raw_in: int, max_tokens: int, *, input_known: bool = False) -> None:
        if not input_known:  # a streamed probe's input count was learnt at its start
            self._input.observe(raw_in, usage.total_input_tokens)
        self._output.observe(usage.output_tokens, max_tokens)

    def _settle(self, passed: Pass, headers: httpx2.Headers, body: bytes, raw_in: int, max_tokens: int) -> None:
        try:
            data = json.loads(_decoded(headers, body))
            usage = self._provider.parse_message(data)[1] if isinstance(data, Mapping) else None
        except ValueError:
            usage = None
        if usage is None or (usage.total_input_tokens == 0 and usage.output_tokens == 0):
            self.gate.succeeded(passed, _estimate(passed))
            return
        self.gate.succeeded(passed, usage)
        self._learn(usage, raw_in, max_tokens)

    async def _assembled(
        self, response: httpx2.Response, passed: Pass, raw_in: int, max_tokens: int
    ) -> httpx2.Response | ErrorDetail | None:
        """Read the streamed probe whole: the unstreamed answer, the error event it carried, or None when it
        must be asked again unstreamed (already settled). A stream cut short raises like a broken connection.

        Its `message_start` (the first event) already counts the input tokens: the estimator is calibrated from
        it then, so the requests admitted from then on are charged calibrated estimates."""
        assembly = ProbeAssembly()
        learnt = False
        stream = response.stream
        if response.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
            assembly.feed(_decoded(response.headers, await _read_raw(response)))
        else:
            assert isinstance(stream, httpx2.AsyncByteStream)
            try:
                async for chunk in stream:
                    assembly.feed(chunk)
                    if not learnt and (counted := assembly.input_tokens()) is not None:
                        learnt = True
                        self._input.observe(raw_in, counted)
            finally:
                await response.aclose()
        assembly.feed(b"", end=True)
        if assembly.error is not None:
            return assembly.error
        message = assembly.message()
        usage = assembly.usage()
        if not assembly.complete:
            raise httpx2.RemoteProtocolError("the streamed answer ended before message_stop")
        if usage is None:
            self.gate.succeeded(passed, _estimate(passed))
        else:
            self.gate.succeeded(passed, usage)
            self._learn(usage, raw_in, max_tokens, input_known=learnt)
        return None if message is None else probe_response(response, message)

    def _metered(self, response: httpx2.Response, passed: Pass, raw_in: int, max_tokens: int) -> httpx2.Response:
        def on_end(usage: Usage | None, error: ErrorDetail | None) -> None:
            if error is not None:  # an error event mid-stream: the SDK raises it (its own retries are off)
                outcome = stream_error_outcome(error)
                self.gate.failed(passed, outcome, 1)
            elif usage is None:  # cut, closed early, or no usage reported: charge what was reserved
                self.gate.succeeded(passed, _estimate(passed))
            else:
                self.gate.succeeded(passed, usage)
                self._learn(usage, raw_in, max_tokens)
            self._active -= 1

        assert isinstance(response.stream, httpx2.AsyncByteStream)
        identity = response.headers.get("content-encoding", "identity").lower() in ("", "identity")
        stream = MeteredStream(response.stream, self._provider.assembler(), on_end, meter=identity)
        extensions = {**_extensions(response), METER: stream.meter}  # a relay reads the usage from it
        return httpx2.Response(response.status_code, headers=response.headers, stream=stream, extensions=extensions)


def http_client(
    *,
    provider: Literal["anthropic", "openai"] = "anthropic",
    limits: Limits | None = None,
    max_concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    minute: float | None = None,
    output_accounting: Literal["produced", "reserved"] | None = None,
    smooth: bool = False,
    timeout: httpx2.Timeout | None = None,
    shared_limits: str | None = None,
    shared_limits_name: str | None = None,
    shared_limits_fallback: bool | int = False,
) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` over a new `LimitedTransport`, for an SDK's `http_client=` argument (the options
    are the transport's)."""
    transport = LimitedTransport(
        provider=provider, limits=limits, max_concurrency=max_concurrency, retry=retry, minute=minute,
        output_accounting=output_accounting, smooth=smooth, shared_limits=shared_limits,
        shared_limits_name=shared_limits_name, shared_limits_fallback=shared_limits_fallback,
    )  # fmt: skip
    # The SDKs' own defaults: 10 minutes per request, 5 s to connect (they also pass a timeout per request).
    return httpx2.AsyncClient(
        transport=transport, timeout=timeout or httpx2.Timeout(600.0, connect=5.0), follow_redirects=True
    )


def _estimate(passed: Pass) -> Usage:
    permit = passed.permit
    return Usage() if permit is None else Usage(input_tokens=permit.input_tokens, output_tokens=permit.output_tokens)
