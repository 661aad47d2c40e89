"""Shared fixtures: the `emulator` factory (a live loopback emulator per call) and the anyio backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator


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
