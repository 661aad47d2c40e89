"""The FastAPI app: the API routes the SDKs call, /metrics, the dashboard, and the gateway in the lifespan.

The seed's pattern (one async client opened in the lifespan, a StreamingResponse forwarding each chunk) with one
shared limiter and retry policy behind it, so every caller of the gateway is polite at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from ._stream_usage import ask_for_usage
from .errors import OwnError, own_error
from .exposition import prometheus, snapshot
from .forward import Call, Forward
from .gateway import Gateway, GatewayConfig

__all__ = ["build_app"]

_PRIORITIES = ("interactive", "bulk")


def build_app(config: GatewayConfig) -> FastAPI:
    """The gateway app for `config`; its lifespan opens the shared upstream and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(config)
        app.state.gateway = gateway
        try:
            yield
        finally:
            await gateway.aclose()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def limited(request: Request) -> Response:
        return await _accept(request, limited=True)

    async def straight(request: Request) -> Response:
        return await _accept(request, limited=False)

    if config.provider == "anthropic":
        app.add_api_route("/v1/messages", limited, methods=["POST"])
        app.add_api_route("/v1/messages/count_tokens", straight, methods=["POST"])
    else:
        app.add_api_route("/v1/chat/completions", limited, methods=["POST"])

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(prometheus(request.app.state.gateway), media_type="text/plain; version=0.0.4")

    @app.get("/_sluicegate/stats")
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(snapshot(request.app.state.gateway), headers={"cache-control": "no-store"})

    @app.get("/")
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(_dashboard_page(), headers={"cache-control": "no-store"})

    return app


def _dashboard_page() -> str:
    return resources.files("sluicegate.serve").joinpath("dashboard.html").read_text(encoding="utf-8")


async def _accept(request: Request, *, limited: bool) -> Response:
    gateway: Gateway = request.app.state.gateway
    provider = gateway.provider
    client = gateway.config.clients.authenticate(request.headers)
    if client is None:
        gateway.ledger.refused["authentication"] += 1
        message = "invalid x-api-key" if provider == "anthropic" else "Incorrect API key provided."
        return _own(own_error(provider, "authentication", message))
    headers = request.headers
    priority_header = headers.get("x-sluicegate-priority")
    wait_header = headers.get("x-sluicegate-max-wait")
    if priority_header is not None and priority_header.strip().lower() not in _PRIORITIES:
        return _bad_header(gateway, "x-sluicegate-priority", "expected interactive or bulk")
    max_wait = gateway.config.max_wait
    if wait_header is not None:
        try:
            max_wait = float(wait_header)
        except ValueError:
            max_wait = math.nan
        if not (math.isfinite(max_wait) and max_wait >= 0):
            return _bad_header(gateway, "x-sluicegate-max-wait", "expected a number of seconds, 0 or more")
    body = await request.body()
    params: dict[str, Any] | None
    try:
        data = json.loads(body)
        params = data if isinstance(data, dict) else None
    except ValueError:
        params = None  # not JSON: the upstream answers it as the API would
    stream = bool(params and params.get("stream") is True)
    hide_usage = False
    if limited and provider == "openai" and params is not None:
        asked = ask_for_usage(params)  # so the stream is costed exactly; the client does not see the extra chunk
        if asked is not None:
            body, hide_usage = asked, True
    priority = priority_header.strip().lower() if priority_header else ("interactive" if stream else "bulk")
    call = Call(
        path=request.url.path,
        body=body,
        headers=headers,
        client=client,
        params=params,
        priority="interactive" if priority == "interactive" else "bulk",
        max_wait=max_wait,
        limited=limited,
        hide_usage=hide_usage,
    )
    return Forward(gateway, call)


def _bad_header(gateway: Gateway, name: str, why: str) -> Response:
    return _own(own_error(gateway.provider, "invalid_request", f"{name}: {why}"))


def _own(error: OwnError) -> Response:
    return Response(error.body, status_code=error.status, headers=error.headers)
