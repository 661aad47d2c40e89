"""The SDK transport's handling of raw responses: read as they came off the wire, decoded, rebuilt and replayed.

The SDK decodes a body exactly once, so the transport (`sdk.py`) keeps it content-encoded; a response that
stopped a key is replayed, marked, for later requests with that key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx2

_KEEP_EXTENSIONS = ("http_version", "reason_phrase")


class _Refusal:
    """The response that stopped a key (401/403, spend cap), replayed for later requests with that key."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: httpx2.Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def response(self) -> httpx2.Response:
        headers = httpx2.Headers(self.headers)
        headers["x-should-retry"] = "false"
        headers["x-sluicegate-refused"] = "true"
        return httpx2.Response(self.status, headers=headers, stream=httpx2.ByteStream(self.body))


def _key_fingerprint(headers: httpx2.Headers) -> str:
    """A digest of the credential, so refusals are per key and the key itself is never stored."""
    secret = headers.get("x-api-key") or headers.get("authorization") or ""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _is_sse(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


async def _read_raw(response: httpx2.Response) -> bytes:
    """The body as it came off the wire (still content-encoded), so the SDK decodes it exactly once."""
    stream = response.stream
    assert isinstance(stream, httpx2.AsyncByteStream)
    try:
        # The stream itself, not aiter_raw(): a response built in-process is already marked as read.
        return b"".join([chunk async for chunk in stream])
    finally:
        await response.aclose()


def _decoded(headers: httpx2.Headers, body: bytes) -> bytes:
    encoding = headers.get("content-encoding")
    if not encoding or encoding.lower() == "identity":
        return body
    try:
        return httpx2.Response(200, headers={"content-encoding": encoding}, content=body).content
    except httpx2.DecodingError:
        return b""


def _extensions(response: httpx2.Response) -> dict[str, Any]:
    return {k: v for k, v in response.extensions.items() if k in _KEEP_EXTENSIONS}


def _rebuilt(response: httpx2.Response, body: bytes, *, final: bool = False) -> httpx2.Response:
    """The same status, headers and body; a failure we give up on tells the SDK not to retry it again."""
    headers = response.headers
    if final:
        headers = httpx2.Headers(headers)
        headers["x-should-retry"] = "false"
    return httpx2.Response(
        response.status_code, headers=headers, stream=httpx2.ByteStream(body), extensions=_extensions(response)
    )
