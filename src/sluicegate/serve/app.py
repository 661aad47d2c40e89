"""The gateway's ASGI app: the API routes the SDKs call, /metrics, the dashboard, and the gateway in the lifespan.

The seed's pattern (one async client opened in the lifespan, a streaming response forwarding each chunk) with one
shared limiter and retry policy behind it, so every caller of the gateway is polite at once. The API routes are
answered before FastAPI's middleware stack (`_api`); everything else is an ordinary FastAPI app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._api import ApiRoute
from .exposition import prometheus, snapshot
from .gateway import Gateway, GatewayConfig

__all__ = ["GatewayApp", "build_app"]


class GatewayApp(FastAPI):
    """FastAPI, with a front door that takes `POST` to an API path straight to its route.

    The same routes are also in FastAPI's router, so whatever the front door does not take (another method, a
    trailing slash) gets FastAPI's own answer (405, the redirect) as before.
    """

    api_routes: dict[str, ApiRoute]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.api_routes.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def build_app(config: GatewayConfig) -> GatewayApp:
    """The gateway app for `config`; its lifespan opens the shared upstream and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(config)
        app.state.gateway = gateway
        try:
            yield
        finally:
            await gateway.aclose()

    app = GatewayApp(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if config.provider == "anthropic":
        paths = {"/v1/messages": True, "/v1/messages/count_tokens": False}
    else:
        paths = {"/v1/chat/completions": True}
    app.api_routes = {path: ApiRoute(app.state, limited=limited) for path, limited in paths.items()}
    for path, route in app.api_routes.items():
        app.router.routes.append(Route(path, route, methods=["POST"]))

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
