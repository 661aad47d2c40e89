"""What Chat Completions refuses beyond the body's shape: unknown fields, max tokens and temperature out of range,
and a prompt over the model's context window, each with the real API's message, param and code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KNOWN_FIELDS", "context_problem", "context_window", "max_output_tokens", "range_problem", "unknown_field"]

# The documented request fields (SDK `CompletionCreateParams`); anything else is refused with
# "Unrecognized request argument supplied", as the API does.
KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# (model prefix, largest completion tokens, context window) from the model pages; the first matching prefix wins,
# so the longer prefixes come first. A model named in none (a local or future one) gets the largest current limits.
_MODELS: tuple[tuple[str, int, int], ...] = (
    ("gpt-4o", 16_384, 128_000),
    ("gpt-4.1", 32_768, 1_047_576),
    ("gpt-4-turbo", 4_096, 128_000),
    ("gpt-3.5-turbo", 4_096, 16_385),
    ("gpt-5", 128_000, 400_000),
    ("o1", 100_000, 200_000),
    ("o3", 100_000, 200_000),
    ("o4-mini", 100_000, 200_000),
)
_DEFAULT = (128_000, 400_000)


def _limits(model: str) -> tuple[int, int]:
    return next(((out, ctx) for prefix, out, ctx in _MODELS if model.startswith(prefix)), _DEFAULT)


def max_output_tokens(model: str) -> int:
    """The largest max_completion_tokens the API accepts for this model."""
    return _limits(model)[0]


def context_window(model: str) -> int:
    """The most tokens the model's prompt and answer may hold together."""
    return _limits(model)[1]


def unknown_field(body: Mapping[str, Any]) -> str | None:
    """The first top-level field the API does not know, or None."""
    extra = sorted(set(body) - KNOWN_FIELDS)
    return extra[0] if extra else None


def range_problem(body: Mapping[str, Any], model: str, max_tokens: int) -> tuple[str, str, str] | None:
    """(message, param, code) of a max tokens or temperature the API refuses, or None."""
    top = max_output_tokens(model)
    if max_tokens > top:
        # The real text for max_tokens; the wording for max_completion_tokens is UNCONFIRMED (assumed the same).
        field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        return (
            f"{field} is too large: {max_tokens}. This model supports at most {top} completion tokens, whereas you "
            f"provided {max_tokens}.",
            field,
            "invalid_value",
        )
    temperature = body.get("temperature")
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return (
            f"Invalid type for 'temperature': expected a decimal, but got {type(temperature).__name__} instead.",
            "temperature",
            "invalid_type",
        )
    if temperature > 2:
        return (
            f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {temperature} "
            "instead.",
            "temperature",
            "decimal_above_max_value",
        )
    if temperature < 0:
        return (
            f"Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got {temperature} "
            "instead.",
            "temperature",
            "decimal_below_min_value",
        )
    return None


def context_problem(model: str, prompt_tokens: int) -> tuple[str, str, str] | None:
    """(message, param, code) when the prompt alone is over the model's context window, or None."""
    window = context_window(model)
    if prompt_tokens <= window:
        return None
    return (
        f"This model's maximum context length is {window} tokens. However, your messages resulted in "
        f"{prompt_tokens} tokens. Please reduce the length of the messages.",
        "messages",
        "context_length_exceeded",
    )
