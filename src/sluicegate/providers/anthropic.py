"""Anthropic Messages: request building, usage, errors, rate-limit headers and the SSE event sequence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from .._models import RateLimitSnapshot, Usage
from ..limits.headers import parse_anthropic_headers
from ..sse import ServerSentEvent
from .base import AssemblerBase, ErrorDetail, StreamFailed

__all__ = ["AnthropicProvider"]

API_VERSION = "2023-06-01"
# The SDK dispatches on these names and silently drops any other event (ping included).
_STREAM_EVENTS = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta"}
    | {"message_stop", "error"}
)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class AnthropicProvider:
    """POST /v1/messages, JSON or SSE."""

    name: Literal["anthropic", "openai"] = "anthropic"
    # The 2026 rate-limit docs: OTPM counts tokens as they are produced; max_tokens does not factor in.
    output_accounting: Literal["produced", "reserved"] = "produced"

    def url(self, base_url: str, *, stream: bool) -> str:
        return base_url.rstrip("/") + "/v1/messages"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

    def body(self, params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        body = dict(params)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    def model(self, params: Mapping[str, Any]) -> str:
        return str(params.get("model") or "")

    def max_tokens(self, params: Mapping[str, Any]) -> int:
        value = params.get("max_tokens")
        return value if isinstance(value, int) and value > 0 else 1

    def rate_limits(self, headers: Mapping[str, str], now_wall: float) -> RateLimitSnapshot:
        return parse_anthropic_headers(headers, now_wall)

    def parse_message(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], Usage]:
        return dict(data), Usage.from_anthropic(data.get("usage"))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorDetail:
        data = _json_or_none(body)
        request_id = headers.get("request-id")
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            err = data["error"]
            details = err.get("details") if isinstance(err.get("details"), Mapping) else {}
            return ErrorDetail(
                message=str(err.get("message") or f"HTTP {status}"),
                error_type=str(err["type"]) if err.get("type") else None,
                error_code=str(details["error_code"]) if details.get("error_code") else None,
                request_id=str(data.get("request_id") or request_id or "") or None,
            )
        text = body[:200].decode("utf-8", "replace").strip()
        return ErrorDetail(message=f"HTTP {status}" + (f": {text}" if text else ""), request_id=request_id)

    def assembler(self) -> AnthropicAssembler:
        return AnthropicAssembler()


class AnthropicAssembler(AssemblerBase):
    """Rebuilds the Message object from message_start .. message_stop, as the SDK's accumulator does."""

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._blocks: list[dict[str, Any]] = []
        self._partial_json: dict[int, list[str]] = {}
        self._usage: dict[str, Any] = {}
        self._complete = False

    def _feed(self, event: ServerSentEvent) -> str | None:
        kind = event.event
        if kind not in _STREAM_EVENTS:
            return None
        data = json.loads(event.data) if event.data else {}
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            index = int(data.get("index", len(self._blocks) - 1))
            block = self._blocks[index]
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = str(delta.get("text", ""))
                block["text"] = block.get("text", "") + text
                return text
            if dtype == "input_json_delta":
                self._partial_json.setdefault(index, []).append(str(delta.get("partial_json", "")))
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
            elif dtype == "signature_delta":
                block["signature"] = str(delta.get("signature", ""))
            return None
        if kind == "message_start":
            self._message = dict(data.get("message") or {})
            self._usage = dict(self._message.get("usage") or {})
        elif kind == "content_block_start":
            self._blocks.append(dict(data.get("content_block") or {}))
        elif kind == "content_block_stop":
            index = int(data.get("index", len(self._blocks) - 1))
            parts = self._partial_json.pop(index, None)
            if parts is not None:
                raw = "".join(parts)
                self._blocks[index]["input"] = json.loads(raw) if raw else {}
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            for key in ("stop_reason", "stop_sequence"):
                if key in delta:
                    self._message[key] = delta[key]
            # message_delta usage is cumulative: later values replace earlier ones.
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self._complete = True
        elif kind == "error":
            err = data.get("error") or {}
            raise StreamFailed(
                ErrorDetail(message=str(err.get("message") or "stream error"), error_type=err.get("type"))
            )
        return None

    def message(self) -> dict[str, Any]:
        out = dict(self._message)
        out["content"] = self._blocks
        out["usage"] = self._usage
        return out

    def usage(self) -> Usage:
        return Usage.from_anthropic(self._usage)
