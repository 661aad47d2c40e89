"""A response body that passes an SSE stream through untouched while reading its usage on the side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx2

from .._models import Usage
from ..providers.base import ErrorDetail, StreamAssembler, StreamFailed
from ..sse import SSEDecoder

__all__ = ["METER", "MeteredStream", "StreamEnd", "StreamMeter"]

# The response extension under which a metered stream's `StreamMeter` is found, so a relay that passes the
# stream on (the gateway) reads the usage from it instead of decoding the events a second time.
METER = "sluicegate.meter"

# Called exactly once when the stream ends, breaks or is closed: the real usage if the provider's final event
# arrived and reported it (None otherwise), and the error event's detail if the server sent one mid-stream.
StreamEnd = Callable[[Usage | None, ErrorDetail | None], None]

# The JSON around a text delta's text: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}
_DELTA_FRAME = 80


class StreamMeter:
    """What has been read from a stream so far: the usage reported, the size of the text, an error event.

    Usage lives in Anthropic's message_start and message_delta (OpenAI's in its last chunk): text deltas, most
    of an Anthropic stream, are only sized, never parsed. The size is what a stream cut short is costed from.
    """

    __slots__ = ("_assembler", "_decoder", "error", "metering", "text_chars")

    def __init__(self, assembler: StreamAssembler, *, meter: bool) -> None:
        self._assembler = assembler
        self._decoder = SSEDecoder()
        self.metering = meter  # False once the events cannot be read (a compressed body, an unknown shape)
        self.error: ErrorDetail | None = None
        self.text_chars = 0

    @property
    def complete(self) -> bool:
        """The provider's end-of-stream event arrived, every event was read, and none was an error."""
        return self.metering and self.error is None and self._assembler.complete

    def usage(self) -> Usage:
        """The usage reported so far (input tokens from the start of an Anthropic stream, all of it at the end)."""
        try:
            return self._assembler.usage()
        except (ValueError, KeyError, TypeError):
            return Usage()

    def reported(self) -> Usage | None:
        """The usage of a complete stream, None when it was cut, failed, or reported nothing (an OpenAI stream
        without include_usage)."""
        if not self.complete:
            return None
        usage = self.usage()
        return None if usage.total_input_tokens == 0 and usage.output_tokens == 0 else usage

    def watch(self, chunk: bytes) -> None:
        if self.metering:
            self._read(chunk, end=False)

    def watch_end(self) -> None:
        if self.metering:
            self._read(b"", end=True)

    def _read(self, chunk: bytes, *, end: bool) -> None:
        try:
            for event in self._decoder.close() if end else self._decoder.feed(chunk):
                if event.event == "content_block_delta":
                    self.text_chars += max(0, len(event.data) - _DELTA_FRAME)
                    continue
                text = self._assembler.feed(event)
                if text:
                    self.text_chars += len(text)
        except StreamFailed as exc:
            self.error = exc.detail
            self.metering = False
        except Exception:  # an event we cannot read is the caller's business, not ours: stop metering
            self.metering = False


class MeteredStream(httpx2.AsyncByteStream):
    """Yields the inner stream's bytes unchanged; a `StreamMeter` reads a copy.

    Metering never breaks the caller's stream: if the events cannot be read the stream still passes through
    and the end is reported without usage.
    """

    def __init__(
        self, inner: httpx2.AsyncByteStream, assembler: StreamAssembler, on_end: StreamEnd, *, meter: bool
    ) -> None:
        self._inner = inner
        self.meter = StreamMeter(assembler, meter=meter)
        self._on_end: StreamEnd | None = on_end

    async def __aiter__(self) -> AsyncIterator[bytes]:
        meter = self.meter
        try:
            async for chunk in self._inner:
                meter.watch(chunk)
                yield chunk
        except BaseException:
            self._finish()
            raise
        meter.watch_end()
        self._finish()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finish()

    def _finish(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(self.meter.reported(), self.meter.error)
