"""The per-request shortcuts keep the slow paths' results: unkeyed blocks, stamps, word draws, fast dispatch."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sluicegate.emulator import EmulatorConfig, content, ratelimit
from sluicegate.emulator.app import FastDispatch
from sluicegate.emulator.caching import PromptCache
from sluicegate.emulator.prompt import count_tokens, prompt_blocks
from sluicegate.emulator.state import EmulatorState

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-5-20250929"


def _params(**extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 10,
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "system": [{"type": "text", "text": "s" * 6000, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "é" * 40}, "plain"]}],
        **extra,
    }


def test_unkeyed_blocks_match_keyed_blocks_but_for_their_keys() -> None:
    """keyed=False gives the same sections, tokens and cache_control, with empty prefix keys."""
    params = _params()
    keyed, unkeyed = prompt_blocks(params), prompt_blocks(params, keyed=False)
    assert [(b.section, b.tokens, b.cache_control) for b in keyed] == [
        (b.section, b.tokens, b.cache_control) for b in unkeyed
    ]
    assert all(b.prefix_key for b in keyed)
    assert not any(b.prefix_key for b in unkeyed)
    assert count_tokens(params, unkeyed) == count_tokens(params) == sum(b.tokens for b in keyed)


@pytest.mark.parametrize("extra", [{}, {"tool_choice": {"type": "auto"}}, {"cache_control": {"type": "ephemeral"}}])
def test_plan_from_unkeyed_blocks_hashes_the_prefixes_it_needs(extra: dict[str, Any]) -> None:
    """A plan given unkeyed blocks writes and later reads the same entries as one that builds its own."""
    params = _params(**extra)
    a, b = PromptCache(), PromptCache()
    first_a = a.plan(params, MODEL, 0.0)
    first_b = b.plan(params, MODEL, 0.0, blocks=prompt_blocks(params, keyed=False))
    assert first_a == first_b
    assert first_a.writes
    a.commit(first_a, 0.0)
    b.commit(first_b, 0.0)
    again_b = b.plan(params, MODEL, 1.0, blocks=prompt_blocks(params, keyed=False))
    assert a.plan(params, MODEL, 1.0) == again_b
    assert again_b.read_tokens > 0


@pytest.mark.parametrize(
    "base", [1_795_000_000.25, 1_795_000_000.9999995, 1_795_000_000.9999994, 1_795_000_000.0, 1_795_000_001 - 1e-7]
)
@pytest.mark.parametrize("ahead", [0.0, 0.5, 12.75, 59.9999999])
def test_reset_stamps_match_datetime_formatting(base: float, ahead: float) -> None:
    """Stamps formatted once per second equal datetime's, including its microsecond rounding into the next second."""
    expected = datetime.fromtimestamp(base + ahead, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ratelimit._rfc3339(base + ahead) == expected
    assert ratelimit._rfc3339(base + ahead) == expected  # served from the per-second cache


def test_word_draws_equal_random_choice() -> None:
    """The answer words are what rng.choice would pick, consuming the generator the same way."""
    a, b = random.Random(42), random.Random(42)
    assert [content._choose(a) for _ in range(1000)] == [b.choice(content._WORDS) for _ in range(1000)]
    assert a.random() == b.random()


async def _call(app: Any, method: str, path: str, sent: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    sent = [] if sent is None else sent

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 1),
        "client": ("127.0.0.1", 2),
    }
    await app(scope, receive, send)
    return sent


async def test_fast_dispatch_serves_exact_post_routes_and_leaves_the_rest_to_starlette() -> None:
    """POST on an exact path skips the router; other methods and paths get Starlette's own answers."""

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    routes = [Route("/ok", ok, methods=["POST"]), Route("/boom", boom, methods=["POST"])]
    state = EmulatorState(EmulatorConfig())
    app = FastDispatch(Starlette(routes=routes), list(routes), state)
    assert set(app.fast) == {"/ok", "/boom"}
    sent = await _call(app, "POST", "/ok")
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"ok"
    assert (await _call(app, "GET", "/ok"))[0]["status"] == 405
    assert (await _call(app, "POST", "/missing"))[0]["status"] == 404
    # An unhandled error answers 500 as Starlette's error middleware does, and still reaches the server.
    fast_sent: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="boom"):
        await _call(app, "POST", "/boom", fast_sent)
    slow_sent: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="boom"):
        await _call(Starlette(routes=routes), "POST", "/boom", slow_sent)
    assert fast_sent == slow_sent
    assert fast_sent[0]["status"] == 500
    assert fast_sent[1]["body"] == b"Internal Server Error"
    assert state.open_requests == 0  # every request left the open count, the failed ones too
