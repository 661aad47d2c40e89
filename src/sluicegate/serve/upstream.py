"""The road upstream: one `LimitedTransport` (the shared limiter, retry policy and cool-down) over a connection pool.

The pool is the engine's own HTTP/1.1 transport (`_transport.EngineTransport`), as the engine picks it: unless
the environment names a proxy for the upstream, when httpx2's transport is used (over a few pools, see
`_pools`). Relaying a stream through httpx2's transport cost the gateway more CPU per request and per chunk than
all of its own work (bench/RESULTS.md). A thin inner transport announces the moment a request has passed the
limiter and is about to go out, which is when the scheduler lets the next ticket in. The upstream key is set
here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal

import httpx2

from .._transport import EngineTransport
from .._wire import _environment_proxy
from ..integrations.sdk import LimitedTransport
from ..limits.limiter import Limits
from ..providers import get as get_provider
from ..providers.base import Provider
from ..retry import RetryPolicy

__all__ = ["Preempted", "Upstream", "client_headers", "response_headers", "scrub"]

_SENT = "sluicegate.sent"
# What a client may say to the upstream besides its body; its own credentials never go up.
_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "content-type", "accept", "user-agent", "openai-beta")
# What the upstream says that a client needs. Rate-limit headers describe the gateway's account, not the client's
# share of it, and the organization id is the account's: neither is passed on.
_RESPONSE_HEADERS = ("content-type", "request-id", "x-request-id", "cache-control", "x-should-retry", "retry-after")
_KEY_ECHO = re.compile(rb"(API key provided: )[^\s\".,]+")
# The SDKs' own per-attempt budget: 10 minutes, 10 s to connect; waiting for the limiter is not counted.
_TIMEOUT = {"connect": 10.0, "read": 600.0, "write": 600.0, "pool": 600.0}
# A connection pool re-examines every one of its connections and queued requests (several calls each) at every
# checkout and every return: with hundreds of streams that is one of the gateway's hottest paths. Requests take
# the pools in turn, so each pass covers an eighth of them.
_POOLS = 8


class Preempted(Exception):
    """The ticket was sent back to the queue before its request went out (an interactive one took its place)."""


class _Announce(httpx2.AsyncBaseTransport):
    """Calls the request's `sluicegate.sent` hook just before the request goes on the wire (after the limiter)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        hook = request.extensions.get(_SENT)
        if hook is not None:
            hook()  # raises Preempted when the ticket lost its place meanwhile: nothing is sent
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Pools(httpx2.AsyncBaseTransport):
    """Several connection pools to the same upstream, taken in turn."""

    def __init__(self, pools: list[httpx2.AsyncBaseTransport]) -> None:
        self._pools = pools
        self._next = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        pool = self._pools[self._next]
        self._next = (self._next + 1) % len(self._pools)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def _pools(capacity: int, proxy: str | None = None) -> _Pools:
    each = -(-capacity // _POOLS)
    limits = httpx2.Limits(max_connections=each, max_keepalive_connections=each)
    tls = httpx2.create_ssl_context()  # one: loading the CA bundle takes tens of milliseconds each time
    return _Pools([httpx2.AsyncHTTPTransport(limits=limits, verify=tls, proxy=proxy) for _ in range(_POOLS)])


def _relay_transport(base_url: str, capacity: int) -> httpx2.AsyncBaseTransport:
    """The engine's transport, or httpx2's pools through the proxy the environment names for `base_url`."""
    proxy = _environment_proxy(base_url)
    if proxy is None:
        return EngineTransport(connections=capacity)
    return _pools(capacity, proxy)


class Upstream:
    """One limiter and one retry policy over a few connection pools, shared by every client of the gateway."""

    def __init__(
        self,
        *,
        provider: Literal["anthropic", "openai"],
        base_url: str,
        api_key: str,
        limits: Limits | None = None,
        max_concurrency: int | None = None,
        minute: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        shared_limits: str | None = None,
        shared_limits_name: str | None = None,
        shared_limits_fallback: bool | int = False,
    ) -> None:
        self.provider: Provider = get_provider(provider)
        self.base_url = base_url.rstrip("/")
        self._auth = self.provider.auth_headers(api_key)
        self._key = api_key
        inner = transport or _relay_transport(self.base_url, (max_concurrency or 512) + 16)
        self.transport = LimitedTransport(
            provider=provider,
            limits=limits,
            max_concurrency=max_concurrency,
            retry=retry,
            minute=minute,
            transport=_Announce(inner),
            shared_limits=shared_limits,
            shared_limits_name=shared_limits_name,
            shared_limits_fallback=shared_limits_fallback,
        )
        self._urls: dict[str, httpx2.URL] = {}

    def url(self, path: str) -> str:
        """The upstream URL for a gateway path (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/chat/...`)."""
        if self.provider.name == "openai":
            # The openai SDK's base URL already ends in /v1.
            return self.base_url + (path[3:] if path.startswith("/v1/") else path)
        return self.base_url + path

    def request(
        self, path: str, body: bytes, headers: Mapping[str, str], on_sent: Callable[[], None] | None
    ) -> httpx2.Request:
        """The upstream request: the body (the client's, byte for byte, unless `ask_for_usage` added to it), its API
        headers, and the upstream key."""
        outgoing = client_headers(headers)
        for name, value in self._auth.items():
            if name == "anthropic-version" and name in outgoing:
                continue  # the client's API version wins; the SDK always sends one
            outgoing[name] = value
        # Plain bytes both ways: the gateway meters what passes, and loopback bandwidth is free.
        outgoing["accept-encoding"] = "identity"
        extensions: dict[str, object] = {"timeout": _TIMEOUT}
        if on_sent is not None:
            extensions[_SENT] = on_sent
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx2.URL(self.url(path))
        return httpx2.Request("POST", url, content=body, headers=outgoing, extensions=extensions)

    async def send(self, request: httpx2.Request) -> httpx2.Response:
        """The response with its body unread. Straight to the transport, as the engine's wire does: an
        `httpx2.AsyncClient` would merge default headers, run auth, redirect and cookie hooks and wrap the stream on
        every request, none of which a relay to one upstream needs, at a cost the gateway pays per request."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    def scrub(self, body: bytes) -> bytes:
        return scrub(body, self._key)

    async def aclose(self) -> None:
        await self.transport.aclose()


def client_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in _REQUEST_HEADERS if name in headers}


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in _RESPONSE_HEADERS if name in headers}


def scrub(body: bytes, key: str) -> bytes:
    """An error body without the upstream key, whole or as the masked echo some APIs put in a 401 message."""
    if key and len(key) >= 4:
        body = body.replace(key.encode(), b"[redacted]")
    return _KEY_ECHO.sub(rb"\1[redacted]", body)
