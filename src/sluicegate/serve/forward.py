"""One client request through the gateway: budget, queue, limiter, upstream, and the answer passed back as it comes.

`Forward` is an ASGI response that does the whole exchange, so that a client going away is noticed at every
stage (queued, inside the limiter, waiting for the upstream, streaming) and ends the work at once: the ticket
leaves the queue, an upstream request is cancelled (the limiter keeps it charged, since the server may have
counted it), and the tokens it used are counted against the client (measured when the upstream reported them,
estimated otherwise).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._clock import Deadline
from .._models import Usage
from ..integrations._metered import METER, StreamMeter
from ._probe import probe_body, rebuilt_message
from ._queue import Priority, Ticket
from ._stream_usage import UsageChunkFilter
from .clients import ClientSpec
from .errors import OwnError, own_error
from .gateway import Gateway
from .scheduler import Refused
from .upstream import Preempted, response_headers

__all__ = ["Call", "Forward"]

log = logging.getLogger("sluicegate.serve")


@dataclass(frozen=True, slots=True)
class Call:
    """What the route read from the client's request."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    client: ClientSpec
    params: dict[str, Any] | None  # the JSON body when it is an object (else the upstream judges it)
    priority: Priority
    max_wait: float
    limited: bool = True  # False for routes the limiter does not cover (count_tokens): straight through
    hide_usage: bool = False  # the gateway asked an OpenAI stream for its usage: the client did not


class Forward(Response):
    """Runs one call when the server sends the response, watching for the client to disconnect meanwhile."""

    def __init__(self, gateway: Gateway, call: Call) -> None:
        self._g = gateway
        self._call = call
        self.background = None
        self.status_code = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                await _Exchange(self._g, self._call, send).run()
            finally:
                tg.cancel_scope.cancel()


class _Exchange:
    """The state of one call; `run` answers it, and its `finally` settles the accounts whatever happened."""

    def __init__(self, gateway: Gateway, call: Call, send: Send) -> None:
        self.g = gateway
        self.call = call
        self._send = send
        self.status: int | None = None
        self.complete = False  # the last byte of the answer was handed to the server
        self.ticket: Ticket | None = None
        self.sent_upstream = False
        self.usage: Usage | None = None
        self.measured = False
        self.started = gateway.clock.now()
        self.queued = 0.0
        params = call.params or {}
        provider = gateway.upstream.provider
        self.model = provider.model(params)
        self.max_tokens = provider.max_tokens(params)
        self.est_in = gateway.input_estimator.estimate(params) if call.params else max(1, len(call.body) // 4)
        self.worst = gateway.prices.estimate_cost(self.model, self.est_in, self.max_tokens)
        self.reserved = 0.0
        self.meter: StreamMeter | None = None  # a stream's usage, read by the upstream transport as it passes
        self.body = call.body
        self.probe = False  # a plain call sent upstream as a stream, to open the limiter at its first byte

    async def run(self) -> None:
        g, call = self.g, self.call
        name = call.client.name
        g.ledger.started_request(name, call.client.budget)
        try:
            if call.limited:
                refusal = g.budget_refusal(call.client, self.model, self.worst)
                if refusal is not None:
                    await self._reply(refusal)
                    return
                try:
                    self.ticket = g.scheduler.submit(name, call.client.share, call.priority, call.max_wait)
                except Refused as exc:
                    await self._reply(g.refusal(exc))
                    return
                self.reserved = self.worst or 0.0
                g.ledger.client(name).reserved += self.reserved
            try:
                response = await self._through()
            except Refused as exc:
                await self._reply(g.refusal(exc))
                return
            except httpx2.TransportError as exc:
                # The retry policy gave up on an upstream that kept dropping or refusing connections.
                detail = f"the upstream API could not be reached: {type(exc).__name__}"
                await self._reply(own_error(g.provider, "unavailable", detail))
                return
            try:
                await self._relay(response)
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        finally:
            self._settle()

    async def _through(self) -> httpx2.Response:
        """Wait for the turn, pass the limiter, send; a preempted ticket goes back and waits again."""
        g, call, ticket = self.g, self.call, self.ticket
        if ticket is None:
            request = g.upstream.request(call.path, call.body, call.headers, None)
            self.sent_upstream = True
            return await g.upstream.send(request)
        while True:
            await g.scheduler.wait_turn(ticket)
            if not self.probe and g.take_probe():
                streamed = probe_body(g.upstream.provider, call.params)
                if streamed is None:
                    g.probe_done()  # not one to convert: the next request may be
                else:
                    self.body, self.probe = streamed, True
            remaining = ticket.deadline - g.clock.now()
            preemptions = ticket.preemptions
            with Deadline(g.clock, remaining) as entry:
                g.scheduler.entering(ticket, entry.cancel)

                def on_sent(entry: Deadline = entry, ticket: Ticket = ticket) -> None:
                    if ticket.state not in ("entering", "admitted"):
                        raise Preempted
                    if ticket.state == "entering":  # first attempt; a retry comes through here again
                        entry.lift()  # the deadline is for the wait, not for the answer
                        g.scheduler.admitted(ticket)
                        self.queued = g.clock.now() - ticket.enqueued_at
                        self.sent_upstream = True
                        g.ledger.client(call.client.name).in_flight += 1

                try:
                    return await g.upstream.send(g.upstream.request(call.path, self.body, call.headers, on_sent))
                except Preempted:
                    continue
            if ticket.preemptions != preemptions:  # sent back by an interactive ticket before anything went out
                continue
            raise g.scheduler.expired(ticket)

    async def _relay(self, response: httpx2.Response) -> None:
        snapshot = self.g.upstream.provider.rate_limits(response.headers, time.time())
        if not snapshot.empty:
            self.g.ledger.last_limits = snapshot
        headers = response_headers(response.headers)
        if self.ticket is not None:
            headers["x-sluicegate-queued-ms"] = str(round(self.queued * 1000))
        sse = response.status_code == 200 and headers.get("content-type", "").startswith("text/event-stream")
        if sse and self.probe:
            meter = response.extensions.get(METER)
            self.meter = meter if isinstance(meter, StreamMeter) else None
            status, own, body = await rebuilt_message(self.g.upstream.provider, response)
            headers.update(own)
            headers["content-length"] = str(len(body))
            await self._start(status, headers)
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            self.complete = True
            return
        if not sse:
            body = await response.aread()
            if response.status_code == 200:
                self._meter_json(body)
            else:
                body = self.g.upstream.scrub(body)
            headers["content-length"] = str(len(body))
            await self._start(response.status_code, headers)
            await self._send({"type": "http.response.body", "body": body, "more_body": False})
            self.complete = True
            return
        await self._start(200, headers)
        meter = response.extensions.get(METER)
        self.meter = meter if isinstance(meter, StreamMeter) else None
        hidden = UsageChunkFilter() if self.call.hide_usage else None
        async for chunk in response.aiter_raw():
            # Each chunk goes to the client as it arrives; the transport below has already read its usage.
            body = chunk if hidden is None else hidden.feed(chunk)
            if body:
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
        tail = b"" if hidden is None else hidden.close()
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})
        self.complete = True

    def _meter_json(self, body: bytes) -> None:
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                self.usage = self.g.upstream.provider.parse_message(data)[1]
                self.measured = True
        except (ValueError, KeyError, TypeError):
            self.measured = False

    async def _start(self, status: int, headers: Mapping[str, str]) -> None:
        self.status = status
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def _reply(self, error: OwnError) -> None:
        await self._start(error.status, {**error.headers, "content-length": str(len(error.body))})
        await self._send({"type": "http.response.body", "body": error.body, "more_body": False})
        self.complete = True

    def _settle(self) -> None:
        """Whatever happened: leave the queue, free the reservation, count the tokens and the answer."""
        g, name = self.g, self.call.client.name
        client = g.ledger.client(name)
        now = g.clock.now()
        if self.probe:
            g.probe_done()
        if self.ticket is not None:
            g.scheduler.leave(self.ticket)
        client.reserved -= self.reserved
        if self.sent_upstream and self.ticket is not None:
            client.in_flight -= 1
        if self.sent_upstream and (self.status is None or self.status == 200):
            self._count_usage()
        if not self.complete:
            client.disconnected += 1
            g.ledger.answered(name, 499, now)  # nginx's "client closed request"
        else:
            assert self.status is not None
            g.ledger.answered(name, self.status, now)
        log.info(
            "%s %s client=%s status=%s queued=%.3fs total=%.3fs",
            "POST",
            self.call.path,
            name,
            self.status if self.complete else "gone",
            self.queued,
            now - self.started,
        )

    def _count_usage(self) -> None:
        text_chars = 0
        if self.meter is not None:
            reported = self.meter.reported()
            self.measured = reported is not None
            self.usage = reported or self.meter.usage()
            text_chars = self.meter.text_chars
        usage = self.usage or Usage()
        if not self.measured:
            # Cut short (the client left) or not reported (an OpenAI stream without include_usage): the input
            # was counted by the upstream, and the text seen so far is at least the output.
            usage = Usage(
                input_tokens=max(usage.input_tokens, self.est_in if usage.total_input_tokens == 0 else 0),
                output_tokens=max(usage.output_tokens, math.ceil(text_chars / 4)),
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cache_creation_1h_input_tokens=usage.cache_creation_1h_input_tokens,
            )
        cost = self.g.prices.cost(self.model, usage) if self.model else None
        self.g.ledger.used(self.call.client.name, usage, cost)
