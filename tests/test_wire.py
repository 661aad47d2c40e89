"""The engine's wire (`_wire`): what a request carries without an AsyncClient, and the environment's proxy."""

from __future__ import annotations

import httpx2
import pytest

from sluicegate._config import Timeouts
from sluicegate._wire import Wire, _environment_proxy

pytestmark = pytest.mark.anyio


async def test_a_request_carries_host_length_headers_and_the_attempt_timeouts() -> None:
    """Each POST has its Host (with the port), Content-Length, the fixed headers and the per-attempt timeouts."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"ok": True})

    wire = Wire(
        httpx2.MockTransport(handler),
        headers={"x-api-key": "k", "content-type": "application/json"},
        timeouts=Timeouts(connect=3.0, idle=7.0),
    )
    for body in (b"{}", b'{"a":1}'):
        response = await wire.send(wire.request("http://api.test:8080/v1/messages", body))
        assert await response.aread() == b'{"ok":true}'
        await response.aclose()
    await wire.aclose()
    first, second = seen
    assert first.headers["host"] == "api.test:8080"
    assert (first.headers["content-length"], second.headers["content-length"]) == ("2", "7")
    assert second.content == b'{"a":1}'
    assert second.headers["x-api-key"] == "k"
    assert second.headers["content-type"] == "application/json"
    assert second.extensions["timeout"] == {"connect": 3.0, "read": 7.0, "write": 7.0, "pool": None}


def test_the_environment_names_the_proxy_unless_no_proxy_excludes_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to an https base URL, NO_PROXY exempts its host, a bare host:port gets http://."""
    for name in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    assert _environment_proxy("https://api.anthropic.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")
    assert _environment_proxy("https://api.anthropic.com") == "http://proxy.internal:3128"
    assert _environment_proxy("http://127.0.0.1:8080") is None
    monkeypatch.setenv("NO_PROXY", "anthropic.com")
    assert _environment_proxy("https://api.anthropic.com") is None
