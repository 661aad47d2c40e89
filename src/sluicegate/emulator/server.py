"""run_emulator: serve the emulator with uvicorn on a loopback port in a background thread."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from sluicegate.emulator.app import build_app
from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.state import EmulatorState


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A live emulator: its base URLs, its state, and stats/reset helpers."""

    base_url: str
    openai_base_url: str
    state: EmulatorState

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


def make_server(state: EmulatorState, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server for `state`, tuned so the emulator is never the bottleneck."""
    config = uvicorn.Config(
        build_app(state),
        log_level="warning",
        access_log=False,
        backlog=4096,
        limit_concurrency=None,
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    return uvicorn.Server(config)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready socket, so the port is known before the server starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Start an emulator in a background thread; stop it cleanly on exit."""
    state = EmulatorState(config or EmulatorConfig())
    sock = bind(host, port)
    server = make_server(state, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("emulator failed to start")
        time.sleep(0.01)
    base = f"http://{host}:{sock.getsockname()[1]}"
    try:
        yield RunningEmulator(base, base + "/v1", state)
    finally:
        state.stopping = True
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
