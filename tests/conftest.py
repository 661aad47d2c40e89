"""Shared fixtures: the `emulator` factory (a live loopback emulator per call), `serve` (any ASGI app on
loopback), a real redis-server and the anyio backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator
from sluicegate.emulator.server import serve_app


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio only."""
    return "asyncio"


@pytest.fixture
def emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Factory: `emulator(rpm=..., minute=...)` starts an emulator, stopped at teardown."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> RunningEmulator:
            return stack.enter_context(run_emulator(EmulatorConfig(**kwargs)))

        yield start


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port for the whole session (no persistence), as a URL."""
    with running_redis() as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(port: int, *extra: str) -> subprocess.Popen[bytes]:
    """redis-server on `port`, no snapshots, no append-only file (`extra`: more options); returns once it accepts
    connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server): the shared limiter needs it")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@contextmanager
def running_redis() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Factory: `serve(app)` serves an ASGI app on a loopback port and returns its base URL; stopped at teardown.

    The emulator's own runner, for tests that serve one group of routes with a stand-in for the core.
    """
    with ExitStack() as stack:

        def start(app: Any) -> str:
            base_url, _ = stack.enter_context(serve_app(app))
            return base_url

        yield start
