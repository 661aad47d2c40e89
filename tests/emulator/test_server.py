"""The emulator's runner: serve_app starts and stops an app; wait_idle waits out what a vanished client sent."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.server import serve_app

pytestmark = pytest.mark.e2e


def test_serve_app_serves_until_the_block_ends() -> None:
    """An app is reachable on its loopback URL inside the block and no longer after it."""

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    with serve_app(app) as (base_url, _), urllib.request.urlopen(base_url + "/", timeout=5) as resp:
        assert resp.read() == b"hello"
    with pytest.raises(urllib.error.URLError, match="refused"), urllib.request.urlopen(base_url + "/", timeout=5):
        pass


def test_wait_idle_waits_out_a_request_whose_client_is_gone(emulator: Callable[..., RunningEmulator]) -> None:
    """A whole request sent by a client that closed at once is still answered and counted before wait_idle returns."""
    emu = emulator(first_token_latency=0.2)
    url = urlsplit(emu.base_url)
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {url.hostname}\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(head.encode() + body.encode())
    emu.wait_idle()
    assert emu.state.open_requests == 0
    assert emu.stats()["status"] == {"200": 1}


def test_wait_idle_gives_up_on_a_client_that_stays(emulator: Callable[..., RunningEmulator]) -> None:
    """A connection that stays open keeps the server busy: wait_idle raises TimeoutError at its timeout."""
    emu = emulator()
    url = urlsplit(emu.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=5), pytest.raises(TimeoutError):
        emu.wait_idle(timeout=0.2)
    emu.wait_idle()  # and once it closes, the server is idle again
