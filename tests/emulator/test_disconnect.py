"""A client that dies mid-request (a killed job) is a normal event for the emulator, not a server error."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from sluicegate.emulator import RunningEmulator


def test_client_gone_before_its_body_arrived_is_not_logged_as_an_error(
    emulator: Callable[..., RunningEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    """Headers announce a body, the socket closes half way: no ERROR log, and the request leaves the in-flight count."""
    emu = emulator()
    url = urlsplit(emu.base_url)
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {url.hostname}\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body) + 100}\r\n\r\n"
    )
    server_log = logging.getLogger("uvicorn.error")  # uvicorn does not propagate to the root logger
    server_log.addHandler(caplog.handler)
    try:
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            sock.sendall(head.encode() + body.encode())
            deadline = time.monotonic() + 10
            while emu.state.open_requests == 0:  # until the server is waiting for the rest of the body
                assert time.monotonic() < deadline, "the request never reached the app"
                time.sleep(0.005)
        emu.wait_idle()  # the server saw the close and finished the request
    finally:
        server_log.removeHandler(caplog.handler)
    assert emu.stats()["in_flight"] == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
