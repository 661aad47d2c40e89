"""The API routes (`/v1/messages`, count_tokens, `/v1/chat/completions`) as plain ASGI: the gateway's hot path.

FastAPI's way through a route (its middleware stack, a `Request`, dependency solving) and the wrappers it puts
around every relayed chunk's `send` cost the gateway about an eighth of its CPU per stream (bench/RESULTS.md),
and CPU spent while many requests arrive at once is added to someone's time to first token. These routes read
what they need from the ASGI scope and hand the exchange to `Forward`; the rest of the app stays on FastAPI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from ._stream_usage import ask_for_usage
from .clients import ClientSpec
from .errors import OwnError, own_error
from .forward import Call, Forward
from .gateway import Gateway

__all__ = ["ApiRoute", "request_headers"]

_PRIORITIES = ("interactive", "bulk")


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by (lower-case) name; of a repeated header the first counts, as in Starlette's."""
    # A dict, not Starlette's `Headers`: that scans the whole list on every lookup, and a request here is looked
    # up about a dozen times (authentication, the gateway's own headers, the ones relayed upstream).
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


class ApiRoute:
    """One API route: authenticate, check the gateway's own headers, read the body, and forward the call."""

    def __init__(self, state: State, *, limited: bool) -> None:
        self._state = state  # the app's: its lifespan puts the Gateway there before the first request
        self.limited = limited  # False for count_tokens, which the limiter does not cover: straight through

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = self._state.gateway
        headers = request_headers(scope["headers"])
        admitted = _admit(gateway, headers)
        if isinstance(admitted, OwnError):
            await _send_own(send, admitted)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its request was whole: nobody to answer
        call = _call(gateway, scope["path"], headers, body, *admitted, limited=self.limited)
        await Forward(gateway, call)(scope, receive, send)


def _admit(gateway: Gateway, headers: dict[str, str]) -> OwnError | tuple[ClientSpec, float]:
    """The caller and its max wait, or the gateway's own error for a bad key or `x-sluicegate-*` header."""
    provider = gateway.provider
    client = gateway.config.clients.authenticate(headers)
    if client is None:
        gateway.ledger.refused["authentication"] += 1
        message = "invalid x-api-key" if provider == "anthropic" else "Incorrect API key provided."
        return own_error(provider, "authentication", message)
    priority = headers.get("x-sluicegate-priority")
    if priority is not None and priority.strip().lower() not in _PRIORITIES:
        return _bad_header(gateway, "x-sluicegate-priority", "expected interactive or bulk")
    max_wait = gateway.config.max_wait
    wait = headers.get("x-sluicegate-max-wait")
    if wait is not None:
        try:
            max_wait = float(wait)
        except ValueError:
            max_wait = math.nan
        if not (math.isfinite(max_wait) and max_wait >= 0):
            return _bad_header(gateway, "x-sluicegate-max-wait", "expected a number of seconds, 0 or more")
    return client, max_wait


def _call(
    gateway: Gateway,
    path: str,
    headers: dict[str, str],
    body: bytes,
    client: ClientSpec,
    max_wait: float,
    *,
    limited: bool,
) -> Call:
    params: dict[str, Any] | None
    try:
        data = json.loads(body)
        params = data if isinstance(data, dict) else None
    except ValueError:
        params = None  # not JSON: the upstream answers it as the API would
    stream = bool(params and params.get("stream") is True)
    hide_usage = False
    if limited and gateway.provider == "openai" and params is not None:
        asked = ask_for_usage(params)  # so the stream is costed exactly; the client does not see the extra chunk
        if asked is not None:
            body, hide_usage = asked, True
    priority_header = headers.get("x-sluicegate-priority")
    priority = priority_header.strip().lower() if priority_header else ("interactive" if stream else "bulk")
    return Call(
        path=path,
        body=body,
        headers=headers,
        client=client,
        params=params,
        priority="interactive" if priority == "interactive" else "bulk",
        max_wait=max_wait,
        limited=limited,
        hide_usage=hide_usage,
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnects first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


def _bad_header(gateway: Gateway, name: str, why: str) -> OwnError:
    return own_error(gateway.provider, "invalid_request", f"{name}: {why}")


async def _send_own(send: Send, error: OwnError) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    headers.append((b"content-length", str(len(error.body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body})
