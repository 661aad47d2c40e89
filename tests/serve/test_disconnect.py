"""A client that goes away: its upstream request is cancelled, its place and reservation given back, its cost
counted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import anyio
import httpx2
import pytest

from .conftest import RunningGateway

pytestmark = pytest.mark.e2e

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def _body(i: int, *, stream: bool = False) -> bytes:
    params = {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": f"text {i}"}]}
    return json.dumps({**params, "stream": stream} if stream else params).encode()


def _wait_until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_stream_closed_midway_cancels_upstream_and_counts_cost(gateway: Callable[..., RunningGateway]) -> None:
    """Closing a stream after a few events ends the upstream request and counts what it used against the client."""
    emulator = {
        "first_token_latency": 0.05,
        "per_token_latency": 0.05,
        "min_output_tokens": 100,
        "max_output_tokens": 100,
    }
    gw = gateway(emulator=emulator)
    with httpx2.Client(timeout=30) as http:
        headers = {**HEADERS, "x-sluicegate-client": "leaver"}
        with http.stream("POST", gw.base_url + "/v1/messages", content=_body(1, stream=True), headers=headers) as r:
            seen = 0
            for line in r.iter_lines():
                seen += line.startswith("event: content_block_delta")
                if seen == 5:
                    break
    _wait_until(lambda: gw.upstream.stats()["in_flight"] == 0)  # the upstream request ended early
    _wait_until(lambda: gw.stats()["in_flight"] == 0)  # and the limiter has its slot back
    leaver = next(c for c in gw.stats()["clients"] if c["name"] == "leaver")
    assert leaver["disconnected"] == 1
    assert leaver["in_flight"] == 0
    assert leaver["input_tokens"] > 0
    assert 5 <= leaver["output_tokens"] < 100  # what was produced before it left, not the whole answer
    assert leaver["cost"] > 0
    assert gw.state.ledger.client("leaver").reserved == pytest.approx(0.0, abs=1e-12)


def test_queued_clients_that_leave_give_their_place_back(gateway: Callable[..., RunningGateway]) -> None:
    """Requests still waiting when their clients disconnect leave the queue and the limiter; none goes upstream.

    Ten streams hold the gateway's ten slots (their first token is 30 s away) while fifty wait behind them. The
    fifty leave first; then the ten, which frees their slots: a ticket left behind would take one and go upstream
    at once, or stay in the line. Every step waits on the gateway's state, never on time.
    """
    gw = gateway(emulator={"first_token_latency": 30.0}, max_concurrency=10)
    scheduler, limiter = gw.state.scheduler, gw.state.upstream.transport

    def waiting() -> int:
        """Tickets in the gateway's line or inside the limiter (an entering ticket is the limiter's waiter)."""
        line = scheduler.statistics()
        return line.queued_interactive + line.queued_bulk + line.entering

    async def until(check: Callable[[], bool]) -> None:
        with anyio.fail_after(20):
            while not check():  # noqa: ASYNC110 -- polls a server in another thread
                await anyio.sleep(0.02)

    async def main() -> None:
        async with httpx2.AsyncClient(timeout=60) as http:

            async def one(i: int) -> None:
                body = _body(i, stream=True)
                async with http.stream("POST", gw.base_url + "/v1/messages", content=body, headers=HEADERS) as r:
                    async for _ in r.aiter_raw():
                        pass

            async with anyio.create_task_group() as holders:
                for i in range(10):
                    holders.start_soon(one, i)
                await until(lambda: limiter.statistics().in_flight == 10)
                async with anyio.create_task_group() as queued:
                    for i in range(10, 60):
                        queued.start_soon(one, i)
                    await until(lambda: waiting() == 50)
                    queued.cancel_scope.cancel()
                await until(lambda: waiting() == 0 and limiter.statistics().waiting == 0)
                holders.cancel_scope.cancel()
            await until(lambda: limiter.statistics().in_flight == 0)

    anyio.run(main)
    assert gw.stats()["upstream_attempts"] == 10  # the ten that held the slots, none of the fifty behind them
    _wait_until(lambda: gw.state.ledger.client("local").disconnected == 60)
    local = gw.state.ledger.client("local")
    assert local.in_flight == 0
    assert local.reserved == pytest.approx(0.0, abs=1e-12)
