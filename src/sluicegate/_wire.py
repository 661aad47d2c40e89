"""The engine's HTTP wire: requests built once per URL and handed straight to an httpx2 transport.

An `httpx2.AsyncClient` re-merges its default headers, parses the URL, runs auth, redirect and cookie hooks and
wraps the response stream on every request. The engine needs none of that (one URL per endpoint, fixed
headers, no redirects, no cookies), and at a few hundred requests a second that per-request work is a large
share of the client's CPU. So the engine keeps its URLs and headers prepared and calls the transport itself.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

import httpx2

from ._config import Timeouts
from ._transport import EngineTransport

__all__ = ["Wire", "default_transport"]

_ACCEPT_ENCODING = "gzip, deflate"  # what httpx2 decodes without optional packages


class Wire:
    """POSTs to a transport with fixed headers and per-attempt timeouts; the transport's owner closes it."""

    def __init__(self, transport: httpx2.AsyncBaseTransport, *, headers: Mapping[str, str], timeouts: Timeouts) -> None:
        self._transport = transport
        self._headers = {"accept": "application/json", "accept-encoding": _ACCEPT_ENCODING, **headers}
        # The transport reads these per request: connect, then the longest silence while writing or reading.
        self._timeout = {"connect": timeouts.connect, "read": timeouts.idle, "write": timeouts.idle, "pool": None}
        self._prepared: dict[str, tuple[httpx2.URL, httpx2.Headers]] = {}

    def request(self, url: str, content: bytes) -> httpx2.Request:
        """A POST of `content` to `url`, its URL and headers parsed once per URL."""
        prepared = self._prepared.get(url)
        if prepared is None:
            parsed = httpx2.URL(url)
            base = httpx2.Headers({"host": parsed.netloc.decode("ascii"), **self._headers})
            prepared = self._prepared[url] = (parsed, base)
        parsed, base = prepared
        headers = httpx2.Headers(base)
        headers["content-length"] = str(len(content))
        return httpx2.Request(
            "POST", parsed, headers=headers, stream=httpx2.ByteStream(content), extensions={"timeout": self._timeout}
        )

    async def send(self, request: httpx2.Request) -> httpx2.Response:
        """The response with its body unread: the caller reads or streams it, then closes it."""
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()


def default_transport(base_url: str, connections: int) -> httpx2.AsyncBaseTransport:
    """A pooled transport for `connections` at once: the engine's own (`_transport`), or httpx2's through the
    proxy the environment names for `base_url` (an `httpx2.AsyncClient` honours HTTP(S)_PROXY / NO_PROXY by
    default; the engine keeps doing so)."""
    proxy = _environment_proxy(base_url)
    if proxy is None:
        return EngineTransport(connections=connections)
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx2.AsyncHTTPTransport(limits=limits, proxy=proxy)


def _environment_proxy(url: str) -> str | None:
    parsed = httpx2.URL(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parsed.host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
