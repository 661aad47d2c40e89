"""The emulator's API error: status, type, message, with the Anthropic and OpenAI body shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_OPENAI_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "invalid_request_error",
    "not_found_error": "invalid_request_error",
    "rate_limit_error": "requests",
    "overloaded_error": "server_error",
    "api_error": "server_error",
}


class ApiError(Exception):
    """An error response the emulator sends."""

    def __init__(self, status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})
        self.details: dict[str, Any] | None = None

    def anthropic_body(self, request_id: str | None = None) -> dict[str, Any]:
        """`{"type": "error", "error": {"type", "message"}, "request_id"}` as the Messages API sends it."""
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details:
            error["details"] = self.details
        body: dict[str, Any] = {"type": "error", "error": error}
        if request_id is not None:
            body["request_id"] = request_id
        return body

    def openai_body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}` as the OpenAI API sends it."""
        kind = _OPENAI_TYPES.get(self.error_type, self.error_type)
        return {"error": {"message": self.message, "type": kind, "param": None, "code": None}}
