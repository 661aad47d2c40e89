"""Seeded fault choice (by probability or inside a scheduled window of real seconds since start), and the one
fault response that needs its own wire behaviour: a JSON answer cut off mid-body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sluicegate.emulator.config import FaultSpec
from sluicegate.emulator.transport import RAW_SEND, FastJSONResponse

if TYPE_CHECKING:  # state.py imports this module: the type only, not a runtime import
    from sluicegate.emulator.state import EmulatorState


def pick_fault(state: EmulatorState) -> FaultSpec | None:
    """The fault this request suffers, if any (first matching spec wins)."""
    now = state.now()
    specs = state.config.faults
    for spec in specs:
        if spec.start is not None:
            end = float("inf") if spec.end is None else spec.end
            if spec.start <= now < end:
                return spec
            continue
        if spec.probability and state.rng.random() < spec.probability:
            return spec
    return None


class TruncatedJSONResponse(Response):
    """A 200 answer whose headers promise the whole JSON body, of which only the first half arrives before the
    connection drops: what a non-streaming client sees when a proxy or the server dies mid-response."""

    def __init__(self, content: Any, headers: Mapping[str, str]) -> None:
        body = FastJSONResponse(content).body
        super().__init__(body, status_code=200, headers=dict(headers), media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": bytes(self.body[: len(self.body) // 2]), "more_body": True})
        raw_send = scope.get(RAW_SEND)
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is not None:
            transport.abort()
            # The server learns of the drop one loop turn later; returning before that, it would log every
            # injected truncation as an app that "returned without completing response".
            await anyio.lowlevel.checkpoint()
