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
    """Requests still waiting in the queue leave it when their clients disconnect; nothing of them goes upstream."""
    # 10 requests per 6-second minute: the limiter spends the server's 10 at once, then admits one per 0.6 s.
    gw = gateway(emulator={"rpm": 10, "minute": 6.0}, minute=6.0)

    async def main() -> None:
        async with httpx2.AsyncClient(timeout=60) as http, anyio.create_task_group() as tg:

            async def one(i: int) -> None:
                await http.post(gw.base_url + "/v1/messages", content=_body(i), headers=HEADERS)

            for i in range(60):
                tg.start_soon(one, i)
            with anyio.fail_after(20):
                while gw.stats()["queued"]["bulk"] < 15:  # noqa: ASYNC110 -- polls a server in another thread
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    anyio.run(main)
    _wait_until(lambda: gw.stats()["queued"]["bulk"] == 0)
    sent = gw.stats()["upstream_attempts"]
    time.sleep(2.5)  # four admission intervals: a ticket left behind would have gone upstream by now
    assert gw.stats()["upstream_attempts"] == sent
    local = next(c for c in gw.stats()["clients"] if c["name"] == "local")
    assert local["disconnected"] >= 40  # all but the burst and the few admitted before they left
