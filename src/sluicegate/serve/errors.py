"""The gateway's own answers (401, its 429s, budget refusals) in the wire shape of the API it stands in for."""

from __future__ import annotations

import json
import math
import secrets
from typing import Literal

__all__ = ["OwnError", "own_error", "request_id"]

Kind = Literal["invalid_request", "authentication", "rate_limited", "budget", "unavailable"]

_ANTHROPIC_TYPE = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "rate_limited": "rate_limit_error",
    "budget": "rate_limit_error",
    "unavailable": "overloaded_error",
}
_OPENAI = {  # (type, code)
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "rate_limited": ("requests", "rate_limit_exceeded"),
    "budget": ("insufficient_quota", "insufficient_quota"),
    "unavailable": ("server_error", "overloaded"),
}
_STATUS = {"invalid_request": 400, "authentication": 401, "rate_limited": 429, "budget": 429, "unavailable": 503}


def request_id() -> str:
    """An id for the gateway's own answers, in the shape of the API's (`req_` and 24 characters)."""
    return "req_sg" + secrets.token_hex(11)


class OwnError:
    """A finished answer: status, headers and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def own_error(
    provider: Literal["anthropic", "openai"], kind: Kind, message: str, *, retry_after: float | None = None
) -> OwnError:
    """The error the official SDKs expect from the API, so they raise their usual exception for it.

    A wait the gateway can name is sent as `retry-after` (whole seconds, rounded up) and `retry-after-ms`
    (the SDKs read this first); without one, or for a budget that is spent, `x-should-retry: false`.
    """
    rid = request_id()
    status = _STATUS[kind]
    if provider == "anthropic":
        payload: dict[str, object] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPE[kind], "message": message},
            "request_id": rid,
        }
        headers = {"request-id": rid}
    else:
        err_type, code = _OPENAI[kind]
        payload = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        headers = {"x-request-id": rid}
    headers["content-type"] = "application/json"
    if retry_after is not None and kind == "rate_limited":
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, round(retry_after * 1000)))
        headers["x-should-retry"] = "true"
    elif kind in ("invalid_request", "authentication", "budget"):
        headers["x-should-retry"] = "false"
    return OwnError(status, headers, json.dumps(payload, separators=(",", ":")).encode())
