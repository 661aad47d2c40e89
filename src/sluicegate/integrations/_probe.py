"""The SDK transport's streamed probe: the first unstreamed Anthropic request goes out streamed, comes back whole.

Until the first answer the limiter lets one request out alone (a bad key costs one request, not hundreds). An
unstreamed answer carries its rate-limit headers only after the whole generation (a second or more); a streamed
one at its first byte. So, as the engine does, the probe is sent with `"stream": true`: its headers open the
limiter at the first byte, and its events are assembled into the Message the caller asked for (as the SDK's own
accumulator does) and handed back as an ordinary JSON response. An event the assembly cannot reproduce exactly
(a delta type it does not know) is not guessed at: the transport then sends the request again, unstreamed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from .._models import Usage
from ..providers.base import ErrorDetail
from ..sse import SSEDecoder

__all__ = ["ProbeAssembly", "probe_request", "probe_response", "stream_error_response"]

_ENDING = frozenset({"message_delta", "message_stop", "error"})
_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking"}  # delta type: the field it extends
# Headers of the streamed answer that do not describe the JSON body built from it.
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding", "cache-control")


def probe_request(request: httpx2.Request, params: dict[str, Any]) -> httpx2.Request:
    """The same request with `"stream": true` (headers, timeouts and other extensions kept)."""
    body = json.dumps({**params, "stream": True}, ensure_ascii=False).encode()
    headers = httpx2.Headers(request.headers)
    headers["content-length"] = str(len(body))
    return httpx2.Request(request.method, request.url, headers=headers, content=body, extensions=request.extensions)


class ProbeAssembly:
    """Message events in, the unstreamed Message out: every event type the API documents, nothing guessed."""

    __slots__ = ("_blocks", "_decoder", "_json", "_message", "_usage", "complete", "error", "faithful")

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._message: dict[str, Any] | None = None
        self._usage: dict[str, Any] = {}
        self._blocks: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}
        self.complete = False  # message_stop arrived
        self.faithful = True  # every event was one the assembly reproduces exactly
        self.error: ErrorDetail | None = None  # an error event mid-stream

    def feed(self, chunk: bytes, *, end: bool = False) -> None:
        events = self._decoder.close() if end else self._decoder.feed(chunk)
        for event in events:
            if not event.data or self.error is not None:
                continue
            if not self.faithful and event.event not in _ENDING:
                continue  # still read to its end: the usage to settle, and whether it was cut
            try:
                self._event(event.event, json.loads(event.data))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                self.faithful = False  # a malformed event: the unstreamed request is the safe answer

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "message_start":
            self._message = dict(data["message"])
            self._usage = dict(self._message.get("usage") or {})
        elif kind == "content_block_start":
            self._blocks.append(dict(data["content_block"]))
        elif kind == "content_block_delta":
            self._delta(self._blocks[int(data["index"])], int(data["index"]), data["delta"])
        elif kind == "content_block_stop":
            parts = self._json.pop(int(data["index"]), None)
            if parts is not None:
                raw = "".join(parts)
                self._blocks[int(data["index"])]["input"] = json.loads(raw) if raw else {}
        elif kind == "message_delta":
            if self._message is not None:
                self._message.update(data.get("delta") or {})
            # Usage on a message_delta is cumulative: a count it carries replaces message_start's.
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            err = data.get("error") or {}
            self.error = ErrorDetail(message=str(err.get("message") or "stream error"), error_type=err.get("type"))
        elif kind != "ping":
            self.faithful = False

    def _delta(self, block: dict[str, Any], index: int, delta: dict[str, Any]) -> None:
        dtype = delta["type"]
        if dtype in _TEXT_DELTAS:
            field = _TEXT_DELTAS[dtype]
            block[field] = block.get(field, "") + str(delta[field])
        elif dtype == "input_json_delta":
            self._json.setdefault(index, []).append(str(delta["partial_json"]))
        elif dtype == "signature_delta":
            block["signature"] = str(delta["signature"])
        elif dtype == "citations_delta":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        else:
            self.faithful = False

    def message(self) -> dict[str, Any] | None:
        """The Message as the unstreamed endpoint returns it; None unless the stream was complete and faithful."""
        if not (self.complete and self.faithful and self.error is None and self._message is not None):
            return None
        return {**self._message, "content": self._blocks, "usage": self._usage}

    def usage(self) -> Usage | None:
        return Usage.from_anthropic(self._usage) if self._usage else None

    def input_tokens(self) -> int | None:
        """The input tokens counted so far: known from `message_start` on (None before it, or if it has none)."""
        usage = self.usage()
        return usage.total_input_tokens if usage is not None and usage.total_input_tokens > 0 else None


def probe_response(streamed: httpx2.Response, message: dict[str, Any]) -> httpx2.Response:
    """The unstreamed answer: the streamed one's status and headers (request id, rate limits), the Message as JSON."""
    return _json_response(streamed, streamed.status_code, message)


def stream_error_response(streamed: httpx2.Response, error: ErrorDetail, status: int) -> httpx2.Response:
    """An error event mid-stream as the unstreamed endpoint reports it: the status that error type comes with
    and the API's error body; given up on, so the SDK does not retry it again."""
    body = {"type": "error", "error": {"type": error.error_type or "api_error", "message": error.message}}
    response = _json_response(streamed, status, body)
    response.headers["x-should-retry"] = "false"
    return response


def _json_response(streamed: httpx2.Response, status: int, data: dict[str, Any]) -> httpx2.Response:
    body = json.dumps(data, ensure_ascii=False).encode()
    headers = httpx2.Headers([(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _BODY_HEADERS])
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(body))
    keep = {k: v for k, v in streamed.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx2.Response(status, headers=headers, stream=httpx2.ByteStream(body), extensions=keep)
