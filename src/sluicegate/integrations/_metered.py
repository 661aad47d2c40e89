"""A response body that passes an SSE stream through untouched while reading its usage on the side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2

from .._models import Usage
from ..providers.base import ErrorDetail, StreamAssembler, StreamFailed
from ..sse import SSEDecoder

__all__ = ["MeteredStream", "StreamEnd"]

# Called exactly once when the stream ends, breaks or is closed: the real usage if the provider's final event
# arrived and reported it (None otherwise), and the error event's detail if the server sent one mid-stream.
StreamEnd = Callable[[Usage | None, ErrorDetail | None], None]


class MeteredStream(httpx2.AsyncByteStream):
    """Yields the inner stream's bytes unchanged; feeds a copy to an SSE decoder and the provider's assembler.

    Metering never breaks the caller's stream: if the events cannot be read (a compressed body, an unknown
    event shape) the stream still passes through and the end is reported without usage.
    """

    def __init__(
        self, inner: httpx2.AsyncByteStream, assembler: StreamAssembler, on_end: StreamEnd, *, meter: bool
    ) -> None:
        self._inner = inner
        self._assembler = assembler
        self._decoder = SSEDecoder()
        self._on_end: StreamEnd | None = on_end
        self._metering = meter
        self._error: ErrorDetail | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                if self._metering:
                    self._watch(chunk)
                yield chunk
        except BaseException:
            self._finish()
            raise
        if self._metering:
            self._watch_end()
        self._finish()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finish()

    def _watch(self, chunk: bytes) -> None:
        try:
            for event in self._decoder.feed(chunk):
                self._assembler.feed(event)
        except StreamFailed as exc:
            self._error = exc.detail
            self._metering = False
        except Exception:  # an event we cannot read is the caller's business, not ours: stop metering
            self._metering = False

    def _watch_end(self) -> None:
        try:
            for event in self._decoder.close():
                self._assembler.feed(event)
        except StreamFailed as exc:
            self._error = exc.detail
        except Exception:
            self._metering = False

    def _finish(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is None:
            return
        usage: Usage | None = None
        if self._error is None and self._metering and self._assembler.complete:
            usage = self._assembler.usage()
            if usage.total_input_tokens == 0 and usage.output_tokens == 0:
                usage = None  # e.g. an OpenAI stream without include_usage: nothing was reported
        on_end(usage, self._error)
