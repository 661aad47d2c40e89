"""The gateway's road upstream on in-process transports: several connection pools taken in turn."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx2

from sluicegate.serve.upstream import _Pools


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
