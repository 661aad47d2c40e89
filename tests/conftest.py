"""Shared fixtures: the `emulator` factory (a live loopback emulator per call), `serve` (any ASGI app on
loopback), a real redis-server and the anyio backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from local_servers import free_port, start_redis
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
