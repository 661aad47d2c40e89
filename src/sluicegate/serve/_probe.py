"""The gateway's first request, streamed upstream so the limiter opens at its first byte, answered as asked.

Until the upstream has answered once, the shared limiter lets one request out alone (a bad key costs one request,
and the answer's headers say what is left). A plain Messages call's headers come with its whole answer, so every
other client waits a full generation for them; a stream's come at its start. As the engine does with its own
probe, the gateway sends that first request as a stream (Anthropic only: there the stream is the same answer)
and rebuilds the Message from the events, as the SDK's accumulator does, for a client that did not ask to stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx2

from ..providers.base import Provider, StreamFailed
from ..sse import SSEDecoder
from .errors import request_id

__all__ = ["probe_body", "rebuilt_message"]

# A mid-stream error event becomes the status the API gives that error type before a stream starts.
_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429, "invalid_request_error": 400}


def probe_body(provider: Provider, params: Mapping[str, Any] | None) -> bytes | None:
    """The body to stream instead of a plain Anthropic call (no `stream`, or `"stream": false`), or None when
    the request is not one to convert (another provider, a body that is not a JSON object, a stream)."""
    if provider.name != "anthropic" or params is None or params.get("stream", False) is not False:
        return None
    return json.dumps({**params, "stream": True}, separators=(",", ":")).encode()


async def rebuilt_message(provider: Provider, response: httpx2.Response) -> tuple[int, dict[str, str], bytes]:
    """Read a streamed answer to its end: (status, headers, JSON body) of the plain call the client made. An
    error event, or a stream that ends early, becomes the API's error answer (529 / 500 and the like, which
    the SDKs retry)."""
    assembler = provider.assembler()
    decoder = SSEDecoder()
    try:
        async for chunk in response.aiter_raw():
            for event in decoder.feed(chunk):
                assembler.feed(event)
        for event in decoder.close():
            assembler.feed(event)
    except StreamFailed as exc:
        kind = exc.detail.error_type or "api_error"
        return _error(_STATUS.get(kind, 500), kind, exc.detail.message)
    except ValueError as exc:  # an event that is not the API's JSON
        return _error(500, "api_error", f"unreadable answer from the upstream API: {exc}")
    if not assembler.complete:
        return _error(500, "api_error", "the upstream API's answer ended early")
    body = json.dumps(assembler.message(), separators=(",", ":")).encode()
    return 200, {"content-type": "application/json"}, body


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    rid = request_id()
    payload = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    headers = {"content-type": "application/json", "request-id": rid}
    return status, headers, json.dumps(payload, separators=(",", ":")).encode()
