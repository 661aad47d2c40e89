"""A streaming answer as the caller sees it: text as it arrives, then the final Result (or its exception)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import anyio

from ._models import Result

__all__ = ["TextStream"]


class TextStream:
    """A streaming answer: `text_stream` yields text as it arrives; `await result()` gives the final Result."""

    def __init__(self) -> None:
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        self._send = send
        self._receive = receive
        self._done = anyio.Event()
        self._result: Result | None = None
        self._exc: BaseException | None = None

    async def _push(self, text: str) -> None:
        await self._send.send(text)

    def _finish(self, result: Result) -> None:
        self._result = result
        self._send.close()
        self._done.set()

    def _fail(self, exc: BaseException) -> None:
        self._exc = exc
        self._send.close()
        self._done.set()

    @property
    def text_stream(self) -> AsyncIterator[str]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[str]:
        async for text in self._receive:
            yield text
        await self._check()

    async def _check(self) -> Result:
        await self._done.wait()
        if self._exc is not None:
            raise self._exc
        assert self._result is not None
        if self._result.error is not None:
            raise self._result.error.exception()
        return self._result

    async def result(self) -> Result:
        """Wait for the end of the stream (consuming what is left) and return the final Result."""
        with contextlib.suppress(anyio.ClosedResourceError):  # already closed: the stream was consumed
            async for _ in self._receive:
                pass
        return await self._check()
