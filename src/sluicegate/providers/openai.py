"""OpenAI Chat Completions (and any OpenAI-compatible server): requests, usage, errors, headers, streams."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from .._models import RateLimitSnapshot, Usage
from ..limits.headers import parse_openai_headers
from ..sse import ServerSentEvent
from .base import AssemblerBase, ErrorDetail, StreamFailed

__all__ = ["OpenAIProvider", "usage_from_openai"]

# Chat Completions has no required max_tokens; reserve this much output when the caller sets none.
DEFAULT_MAX_TOKENS = 4096


def usage_from_openai(data: Mapping[str, Any] | None) -> Usage:
    """Map OpenAI usage onto Anthropic's fields: cached prompt tokens are cache reads, not input."""
    if not data:
        return Usage()
    prompt = int(data.get("prompt_tokens") or 0)
    details = data.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=int(data.get("completion_tokens") or 0),
        cache_read_input_tokens=cached,
    )


class OpenAIProvider:
    """POST {base_url}/chat/completions; the base URL includes /v1 as in the openai SDK."""

    name: Literal["anthropic", "openai"] = "openai"
    # OpenAI counts max_tokens against the token limit up front.
    output_accounting: Literal["produced", "reserved"] = "reserved"

    def url(self, base_url: str, *, stream: bool) -> str:
        return base_url.rstrip("/") + "/chat/completions"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def body(self, params: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        body = dict(params)
        if stream:
            body["stream"] = True
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True  # the only way to learn a stream's usage
            body["stream_options"] = options
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    def model(self, params: Mapping[str, Any]) -> str:
        return str(params.get("model") or "")

    def max_tokens(self, params: Mapping[str, Any]) -> int:
        for key in ("max_completion_tokens", "max_tokens"):
            value = params.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return DEFAULT_MAX_TOKENS

    def rate_limits(self, headers: Mapping[str, str], now_wall: float) -> RateLimitSnapshot:
        return parse_openai_headers(headers)

    def parse_message(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], Usage]:
        return dict(data), usage_from_openai(data.get("usage"))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorDetail:
        request_id = headers.get("x-request-id")
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            err = data["error"]
            return ErrorDetail(
                message=str(err.get("message") or f"HTTP {status}"),
                error_type=str(err["type"]) if err.get("type") else None,
                error_code=str(err["code"]) if err.get("code") else None,
                request_id=request_id,
            )
        text = body[:200].decode("utf-8", "replace").strip()
        return ErrorDetail(message=f"HTTP {status}" + (f": {text}" if text else ""), request_id=request_id)

    def assembler(self) -> OpenAIAssembler:
        return OpenAIAssembler()


class OpenAIAssembler(AssemblerBase):
    """Rebuilds a chat.completion object from chat.completion.chunk events and the final usage chunk."""

    def __init__(self) -> None:
        self._base: dict[str, Any] = {}
        self._text: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._complete = False

    def _feed(self, event: ServerSentEvent) -> str | None:
        if event.data == "[DONE]":
            self._complete = True
            return None
        data = json.loads(event.data)
        if "error" in data and isinstance(data["error"], Mapping):
            err = data["error"]
            raise StreamFailed(
                ErrorDetail(message=str(err.get("message") or "stream error"), error_type=err.get("type"))
            )
        if not self._base:
            self._base = {k: data[k] for k in ("id", "created", "model", "system_fingerprint") if k in data}
        if data.get("usage"):
            self._usage = data["usage"]
        text: str | None = None
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self._text.append(piece)
                text = piece
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return text

    def _tool_call(self, delta: Mapping[str, Any]) -> None:
        """Tool calls stream as fragments keyed by index: id, type and name once, arguments in pieces."""
        call = self._tool_calls.setdefault(
            int(delta.get("index", 0)), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        for key in ("id", "type"):
            if delta.get(key):
                call[key] = delta[key]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        call["function"]["arguments"] += function.get("arguments") or ""

    def message(self) -> dict[str, Any]:
        out = dict(self._base)
        out["object"] = "chat.completion"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text)}
        if self._tool_calls:
            message["content"] = message["content"] or None  # as in the JSON shape of a tool-call answer
            message["tool_calls"] = [self._tool_calls[i] for i in sorted(self._tool_calls)]
        out["choices"] = [{"index": 0, "message": message, "finish_reason": self._finish_reason}]
        if self._usage is not None:
            out["usage"] = self._usage
        return out

    def usage(self) -> Usage:
        return usage_from_openai(self._usage)
