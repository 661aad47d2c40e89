"""Validation of Messages request bodies, with the real API's statuses and messages."""

from __future__ import annotations

from typing import Any

from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.errors import ApiError


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def resolve_model(model: str, config: EmulatorConfig) -> str:
    """The dated id for `model`, or 404 not_found_error."""
    if model in config.models or config.accept_any_model:
        return model
    if model in config.aliases:
        return config.aliases[model]
    raise ApiError(404, "not_found_error", f"model: {model}")


def validate_message_params(body: Any, config: EmulatorConfig) -> str:
    """Check a /v1/messages body; return the resolved model id or raise ApiError(400/404)."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise _bad("model: Field required")
    if not isinstance(model, str):
        raise _bad("model: Input should be a valid string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _bad("max_tokens: Input should be a valid integer")
    if max_tokens < 0:
        raise _bad("max_tokens: Input should be greater than or equal to 0")
    if max_tokens == 0 and body.get("stream"):
        # max_tokens 0 only pre-warms the cache; the API refuses it with streaming (exact message UNCONFIRMED).
        raise _bad("max_tokens: 0 is not supported with stream: true")
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages.{i}: Input should be a valid dictionary")
        if msg.get("role") not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if not isinstance(msg.get("content"), (str, list)):
            raise _bad(f"messages.{i}.content: Field required")
    if not messages:
        raise _bad("messages: at least one message is required")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _bad("stream: Input should be a valid boolean")
    return resolve_model(model, config)
