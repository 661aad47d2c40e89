"""Run a coroutine function on a new event loop: uvloop's when it is installed, asyncio's otherwise.

uvloop's C event loop and sockets cut the client's CPU per request (bench/RESULTS.md). Only the loops sluicegate
creates itself use it (`sluicegate.run`, the CLI); the event-loop policy is never touched, so code that runs its
own loop, or runs the Engine in it, keeps that loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["loop_options", "run_async"]

T = TypeVar("T")


def loop_options() -> dict[str, Any]:
    """anyio's backend options for a new loop: uvloop's loop factory when uvloop can be imported."""
    try:
        import uvloop
    except ImportError:  # Windows, or an install without it: asyncio's own loop
        return {}
    return {"loop_factory": uvloop.new_event_loop}


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    """`anyio.run(func)` on a fresh loop of the fastest kind installed."""
    return anyio.run(func, backend_options=loop_options())
