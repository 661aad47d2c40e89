"""A bare TCP relay, the floor under any gateway: `python -m bench.serve.tcp_relay HOST:PORT` forwards bytes to the
upstream and back, parsing nothing, on the gateway's event loop (uvloop when installed).

It prints `tcp_relay: listening on http://127.0.0.1:<port>` once it accepts connections. In the TTFT benchmarks it
stands where the gateway stands: what it adds is what one more process and one more hop cost on this machine,
whatever the gateway does.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast


class _Half(asyncio.Protocol):
    """One side of a relayed connection: what arrives is written to the other side as it comes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.early: list[bytes] = []  # bytes that came before the other side was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both loops set TCP_NODELAY themselves.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


_CONNECTING: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def _client_side(loop: asyncio.AbstractEventLoop, host: str, port: int) -> _Half:
    client = _Half()

    async def connect() -> None:
        upstream = _Half()
        try:
            await loop.create_connection(lambda: upstream, host, port)
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        upstream.peer, client.peer = client, upstream
        assert upstream.transport is not None
        for data in client.early:
            upstream.transport.write(data)
        client.early.clear()

    task = loop.create_task(connect())
    _CONNECTING.add(task)
    task.add_done_callback(_CONNECTING.discard)
    return client


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _client_side(loop, host, port), "127.0.0.1", 0, backlog=4096)
    print(f"tcp_relay: listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main(target: str) -> None:
    host, _, port = target.rpartition(":")
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    run(_serve(host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1])
