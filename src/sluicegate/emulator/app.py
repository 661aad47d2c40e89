"""The emulator's ASGI app: Anthropic routes, optional OpenAI and batch routes, stats and reset."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sluicegate.emulator.messages import CountTokensHandler, MessagesHandler
from sluicegate.emulator.transport import KeepRawSend


def build_app(state: Any) -> Any:
    """An ASGI app serving one emulator state (a Starlette app wrapped to keep the raw transport)."""

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
    try:
        from sluicegate.emulator.openai_api import openai_routes

        routes.extend(openai_routes(state))
    except ImportError:
        pass
    try:
        from sluicegate.emulator.batches import batch_routes

        routes.extend(batch_routes(state))
    except ImportError:
        pass
    app = Starlette(routes=routes)
    app.state.emulator = state
    return KeepRawSend(app)
