"""run_gateway: serve the gateway with uvicorn on a loopback port in a background thread (tests, notebooks, bench)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from .app import build_app
from .gateway import Gateway, GatewayConfig

__all__ = ["KEEP_ALIVE", "ReadyServer", "RunningGateway", "bind", "run_gateway"]


# Longer than the clients' own idle expiry (httpx and the SDKs: 5 s, uvicorn's default too): with equal timers a
# client may reuse a kept-alive connection at the moment the gateway closes it, and its request fails with a
# ReadError. Letting the client always give up first removes that race.
KEEP_ALIVE = 75


class ReadyServer(uvicorn.Server):
    """A uvicorn server that calls `on_ready` once it accepts connections (from the server's own thread)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_ready()


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A live gateway: its base URL and its app (whose `state.gateway` is the Gateway)."""

    base_url: str
    app: FastAPI

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway


def bind(host: str, port: int) -> socket.socket:
    """A bound socket, so the port is known (port 0 picks a free one) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def run_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningGateway]:
    """Start a gateway in a background thread (lifespan on); drain and stop it when the block ends."""
    app = build_app(config)
    sock = bind(host, port)
    ready = threading.Event()
    uv_config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=4096,
        timeout_graceful_shutdown=2,
        timeout_keep_alive=KEEP_ALIVE,
    )
    server = ReadyServer(uv_config, ready.set)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if not ready.wait(timeout=30):
        server.should_exit = True
        raise RuntimeError("the gateway failed to start")
    try:
        yield RunningGateway(f"http://{host}:{sock.getsockname()[1]}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
