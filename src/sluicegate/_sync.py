"""The sync entry: run a whole job from plain code, including a Jupyter cell where a loop already runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterable, Iterable
from typing import Any

from ._loop import run_async
from ._models import Result

__all__ = ["run"]


def run(requests: Iterable[Any] | AsyncIterable[Any], *, fail_fast: bool = False, **engine_kwargs: Any) -> list[Result]:
    """Run `requests` with an Engine built from `engine_kwargs`; results in input order.

    With no event loop running in this thread it runs one directly. Inside a running loop (Jupyter) it runs
    the job on a fresh loop in a worker thread and waits: no nest_asyncio, no re-entrancy into the user's loop.
    Either loop is uvloop's when uvloop is installed; the process's event-loop policy is left alone.
    """
    from .engine import Engine

    async def main() -> list[Result]:
        async with Engine(**engine_kwargs) as engine:
            return await engine.map(requests, fail_fast=fail_fast)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_async(main)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluicegate") as pool:
        return pool.submit(run_async, main).result()
