"""Dropping a connection without a response, for the reset and truncate faults."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request

RAW_SEND = "sluicegate.raw_send"


class KeepRawSend:
    """Outermost ASGI middleware: remember the server's own `send`, whose owner holds the transport."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


async def abort_connection(request: Request) -> None:
    """Abort the TCP connection (RST, no bytes) so the client sees a connection error, not a status."""
    send = request.scope.get(RAW_SEND)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
    # Let the server notice the lost connection so what the app sends next is discarded.
    for _ in range(3):
        await anyio.lowlevel.checkpoint()
