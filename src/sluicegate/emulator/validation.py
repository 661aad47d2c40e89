"""Validation of Messages request bodies, with the real API's statuses and messages."""

from __future__ import annotations

from typing import Any

from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.errors import ApiError

# The Messages API's documented top-level fields (SDK `MessageCreateParams`); anything else is refused with
# pydantic's "Extra inputs are not permitted", as the API does.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "cache_control",
        "output_config",
        "output_format",
        "inference_geo",
        "container",
        "mcp_servers",
        "context_management",
        "speed",
    }
)
# Largest max_tokens per model family (model pages; the 5-series values are UNCONFIRMED), first matching prefix wins.
_MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4-0", 32_000),
    ("claude-haiku-4-5", 64_000),
    ("claude-sonnet-4", 64_000),
    ("claude-opus-4-5", 64_000),
)
_DEFAULT_MAX_OUTPUT = 128_000
CONTEXT_WINDOW = 200_000  # input tokens a request may carry (the 1M-token window needs a beta the emulator lacks)


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def max_output_tokens(model: str) -> int:
    """The largest max_tokens the API accepts for this (resolved) model."""
    return next((top for prefix, top in _MAX_OUTPUT if model.startswith(prefix)), _DEFAULT_MAX_OUTPUT)


def check_prompt_size(input_tokens: int) -> None:
    """400 for a prompt over the context window, with the API's message."""
    if input_tokens > CONTEXT_WINDOW:
        raise _bad(f"prompt is too long: {input_tokens} tokens > {CONTEXT_WINDOW} maximum")


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
    extra = sorted(set(body) - KNOWN_FIELDS)
    if extra:
        raise _bad(f"{extra[0]}: Extra inputs are not permitted")
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
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 1
    ):
        raise _bad("temperature: Input should be less than or equal to 1")
    resolved = resolve_model(model, config)
    top = max_output_tokens(resolved)
    if max_tokens > top:
        raise _bad(
            f"max_tokens: {max_tokens} > {top}, which is the maximum allowed number of output tokens for {resolved}"
        )
    return resolved
