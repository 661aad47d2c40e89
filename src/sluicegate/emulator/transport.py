"""Response helpers: dropping a connection (reset and truncate faults), prebuilt-encoder JSON, closing streams."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Send

RAW_SEND = "sluicegate.raw_send"  # set on every HTTP scope by the app's outermost layer (FastDispatch)


# Starlette's JSONResponse.render calls json.dumps with these arguments, which builds a new encoder every time.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class FastJSONResponse(JSONResponse):
    """A JSONResponse (same bytes) whose encoder is built once."""

    def render(self, content: Any) -> bytes:
        return _JSON.encode(content).encode("utf-8")


async def abort_connection(request: Request) -> None:
    """Abort the TCP connection (RST, no bytes) so the client sees a connection error, not a status."""
    send = request.scope.get(RAW_SEND)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
    # Let the server notice the lost connection so what the app sends next is discarded.
    for _ in range(3):
        await anyio.lowlevel.checkpoint()


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose body generator is closed however the response ends.

    A hang-up can cancel Starlette while it awaits a send, leaving the generator suspended; its cleanup (settling
    rate limits, stats) would then wait for the garbage collector, possibly after the server's loop is gone.
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
