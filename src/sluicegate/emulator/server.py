"""run_emulator: serve the emulator (or any ASGI app) with uvicorn on a loopback port in a background thread."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from starlette.types import ASGIApp

from sluicegate.emulator.app import build_app
from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.state import EmulatorState


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A live emulator: its base URLs, its state, and stats/reset/wait_idle helpers."""

    base_url: str
    openai_base_url: str
    state: EmulatorState
    server: uvicorn.Server = field(repr=False, compare=False)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until the server holds no connection and runs no request (TimeoutError after `timeout` s).

        What a client already handed to the kernel before it died (a connection in the accept queue, its bytes,
        its close) is taken up by a few turns of the server's loop; the check runs on that loop, after them, so
        a count read afterwards is final. Tests use this instead of sleeping "long enough".
        """
        loop = self.server.servers[0].get_loop()
        future = asyncio.run_coroutine_threadsafe(_until_idle(self.server, self.state), loop)
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()  # stop polling on the server's loop too
            raise

    def stats(self) -> dict[str, Any]:
        """GET /_emulator/stats."""
        with urllib.request.urlopen(self.base_url + "/_emulator/stats", timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def reset(self) -> None:
        """POST /_emulator/reset."""
        req = urllib.request.Request(self.base_url + "/_emulator/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


async def _until_idle(server: uvicorn.Server, state: EmulatorState) -> None:
    """Return once the server is idle after a few full turns of its loop."""
    while True:
        for _ in range(_LOOP_TURNS):
            await asyncio.sleep(0)
        if not server.server_state.connections and state.open_requests == 0:
            return
        await anyio.sleep(_IDLE_POLL)


# Turns of the event loop that take up I/O the kernel already holds: accept, read the request, start its task.
_LOOP_TURNS = 10
_IDLE_POLL = 0.005  # seconds between checks while a request is still running


class _Server(uvicorn.Server):
    """A uvicorn server that signals, across threads, when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def make_server(app: ASGIApp) -> _Server:
    """A uvicorn server for `app`, tuned so the emulator is never the bottleneck."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        backlog=4096,
        limit_concurrency=None,
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    return _Server(config)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready socket, so the port is known before the server starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def serve_app(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[tuple[str, uvicorn.Server]]:
    """Serve `app` in a background thread; yields its base URL and server once it listens, stops it on exit.

    The one app-in-a-thread runner: run_emulator uses it, and so do tests that serve a single group of routes.
    """
    sock = bind(host, port)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(_START_CHECKS):
            if server.ready.wait(_START_CHECK):
                break
            if not thread.is_alive():
                raise RuntimeError("emulator failed to start")
        else:
            raise RuntimeError("emulator did not start within 10 seconds")
        yield f"http://{host}:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


_START_CHECK = 0.05  # seconds between checks that the server thread is still alive while it starts
_START_CHECKS = 200  # 10 seconds


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Start an emulator in a background thread; stop it cleanly on exit."""
    state = EmulatorState(config or EmulatorConfig())
    with serve_app(build_app(state), host=host, port=port) as (base, server):
        try:
            yield RunningEmulator(base, base + "/v1", state, server)
        finally:
            state.stopping = True  # ends hanging requests, so the server can stop
