"""The emulator's ASGI app: Anthropic routes, optional OpenAI and batch routes, stats and reset."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluicegate.emulator.batches import batch_routes
from sluicegate.emulator.messages import CountTokensHandler, MessagesHandler
from sluicegate.emulator.openai_api import openai_routes
from sluicegate.emulator.openai_batches import batch_api_routes
from sluicegate.emulator.openai_files import file_routes
from sluicegate.emulator.transport import RAW_SEND

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

Endpoint = Callable[[Request], Awaitable[Response]]


class FastDispatch:
    """Outermost ASGI app: exact-path POST routes go straight to their endpoint, the rest through Starlette.

    Starlette's router and middleware stack cost more than a simple emulated answer; what they do for these
    routes is kept: the same Request and response, and an unhandled error still answers 500 "Internal Server
    Error" (when nothing was sent yet) and is re-raised for the server to log. Every HTTP scope also keeps the
    server's own `send` (RAW_SEND), whose owner holds the transport a fault may abort.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], state: EmulatorState) -> None:
        self.app = app
        self.state = state
        self.fast: dict[str, Endpoint] = {}
        for route in routes:
            if (
                isinstance(route, Route)
                and route.methods == {"POST"}
                and "{" not in route.path
                and route.path not in self.fast
                and inspect.iscoroutinefunction(route.endpoint)
            ):
                self.fast[route.path] = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[RAW_SEND] = send
        self.state.open_requests += 1  # every HTTP request, whatever its route: what wait_idle waits out
        try:
            await self._dispatch(scope, receive, send)
        finally:
            self.state.open_requests -= 1

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.fast.get(scope["path"]) if scope["method"] == "POST" and not scope.get("root_path") else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, guarded_send)
        except ClientDisconnect:
            return  # the client went away before its body arrived (a killed process): nobody to answer, no error
        except Exception:
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise


def build_app(state: EmulatorState) -> FastDispatch:
    """An ASGI app serving one emulator state (a Starlette app behind a fast dispatch of the hot routes)."""

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats.as_dict())

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = [
        Route("/v1/messages", MessagesHandler(state).handle, methods=["POST"]),
        Route("/v1/messages/count_tokens", CountTokensHandler(state).handle, methods=["POST"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]
    routes.extend(openai_routes(state))
    routes.extend(batch_routes(state))
    routes.extend(file_routes(state))
    routes.extend(batch_api_routes(state))
    app = Starlette(routes=routes)
    app.state.emulator = state
    return FastDispatch(app, routes, state)
