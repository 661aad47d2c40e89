"""First come, first served turns: only the head of the queue may take capacity; the others sleep until theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

__all__ = ["FifoTurns"]


class FifoTurns:
    """`async with turns.turn():` waits until every earlier caller has left, so an admission wakes one task,
    not every waiter, and a large request at the head is not starved by small ones behind it."""

    def __init__(self) -> None:
        self._queue: list[anyio.Event] = []

    def __len__(self) -> int:
        return len(self._queue)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        mine = anyio.Event()
        self._queue.append(mine)
        if len(self._queue) == 1:
            mine.set()
        try:
            await mine.wait()
            yield
        finally:
            head = self._queue[0] is mine
            self._queue.remove(mine)
            if head and self._queue:
                self._queue[0].set()
