"""The gateway's road upstream: which transport it relays on, and httpx2's pools taken in turn (with a proxy)."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx2
import pytest

from sluicegate._transport import EngineTransport
from sluicegate.serve.upstream import _Pools, _relay_transport


def test_requests_take_the_pools_in_turn() -> None:
    """Sixteen requests over four pools: each pool carries four, in rotation, so no pool's bookkeeping holds
    every connection."""
    seen: list[int] = []

    def pool(i: int) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            seen.append(i)
            return httpx2.Response(200, json={})

        return httpx2.MockTransport(handle)

    async def main() -> None:
        async with httpx2.AsyncClient(transport=_Pools([pool(i) for i in range(4)])) as http:
            for _ in range(16):
                await http.post("http://api.test/v1/messages", json={})

    anyio.run(main)
    assert seen[:4] == [0, 1, 2, 3]
    assert Counter(seen) == {0: 4, 1: 4, 2: 4, 3: 4}


def test_relay_uses_the_engine_transport_unless_a_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a proxy in the environment the relay runs on the engine's transport; with one, on httpx2's pools
    through that proxy, as the engine chooses."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(_relay_transport("https://api.anthropic.com", 64), EngineTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert isinstance(_relay_transport("https://api.anthropic.com", 64), _Pools)
    assert isinstance(_relay_transport("http://127.0.0.1:8080", 64), EngineTransport)  # HTTPS_PROXY is for https URLs
